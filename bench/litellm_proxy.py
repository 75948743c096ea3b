"""LiteLLM's proxy, the Python gateway we compare with, in its own venv under bench/.

The venv is created on the first run (pip shows what it installs; later runs reuse it). The
proxy runs with logging, database and callbacks off, `num_workers` = cores, and the simulator as
an OpenAI-compatible model. Anything that fails here makes LiteLLM "missing" in the report; it
never fails the bench.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.servers import REPO, Server, free_port, start_polled

VENV = REPO / "bench" / ".litellm-venv"
MARKER = VENV / ".installed"
PINNED = "1.108.7"
# Tried in order: the version the issue measured, then the nearest releases.
SPECS = (f"litellm[proxy]=={PINNED}", "litellm[proxy]~=1.108.0", "litellm[proxy]")
MASTER_KEY = "sk-bench-litellm"
MODEL = "MiniMax-M2.7"


def _python() -> Path:
    return VENV / "bin" / "python"


def installed_version() -> str | None:
    return MARKER.read_text().strip() if MARKER.exists() else None


def _run_logged(args: list[str], on_line: Callable[[str], None], timeout_s: float) -> int:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    for line in proc.stdout:
        on_line(line.rstrip())
        if time.monotonic() > deadline:
            proc.kill()
            break
    return proc.wait(timeout=30)


def ensure_venv(on_line: Callable[[str], None], timeout_s: float = 1200) -> tuple[str | None, str]:
    """Create the venv and install LiteLLM if needed. Returns (version or None, note)."""
    version = installed_version()
    if version:
        return version, "reused"
    base = "python3.11" if sys.version_info[:2] != (3, 11) else sys.executable
    if not _python().exists():
        on_line(f"creating {VENV}")
        if _run_logged([base, "-m", "venv", str(VENV)], on_line, 120) != 0:
            return None, "could not create the venv"
        _run_logged([str(_python()), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], on_line, 300)
    for spec in SPECS:
        on_line(f"pip install {spec}")
        code = _run_logged(
            [str(_python()), "-m", "pip", "install", "--progress-bar", "off", spec], on_line, timeout_s
        )
        if code == 0:
            probe = subprocess.run(
                [str(_python()), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if probe.returncode == 0:
                version = probe.stdout.strip()
                MARKER.write_text(version + "\n")
                return version, f"installed {spec}"
    return None, "pip could not install litellm"


def write_config(path: Path, simulator_url: str) -> Path:
    path.write_text(
        f"""# Written by bench/litellm_proxy.py: the simulator as an OpenAI-compatible model, and
# every optional cost (logging, database, callbacks) switched off.
model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_base: {simulator_url}/v1
      api_key: bench-upstream-key
litellm_settings:
  set_verbose: false
  json_logs: false
  turn_off_message_logging: true
  callbacks: []
  success_callback: []
  failure_callback: []
  drop_params: true
  request_timeout: 600
general_settings:
  master_key: {MASTER_KEY}
  disable_spend_logs: true
  disable_error_logs: true
  store_model_in_db: false
  disable_reset_budget: true
  background_health_checks: false
"""
    )
    return path


def litellm_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_", "LITELLM_"))}
    env.update(
        {
            # Loopback only: use the bundled model-cost map and skip every startup fetch.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOCAL_BLOG_POSTS": "True",
            "LITELLM_LOCAL_POLICY_TEMPLATES": "true",
            "LITELLM_LOG": "ERROR",
            "DISABLE_ADMIN_UI": "True",
            "NO_DOCS": "True",
        }
    )
    return env


def start_litellm(simulator_url: str, workers: int, work_dir: Path, log_dir: Path) -> Server:
    config = write_config(work_dir / "litellm.yaml", simulator_url)
    port = free_port()
    args = [
        str(VENV / "bin" / "litellm"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]
    return start_polled(
        "litellm",
        args,
        litellm_env(),
        log_dir,
        f"http://127.0.0.1:{port}",
        "/health/liveliness",
        timeout_s=180,
    )
