"""The README's examples run against the real test gateway."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import Gateway

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"


def _block(language: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"```{language}\n(.*?)```", text, re.S)
    assert match, f"README has no {language} example"
    return match.group(1)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_readme_node_example_gets_a_completion(gateway: Gateway, tmp_path: Path) -> None:
    assert (NODE_DIR / "node_modules" / "openai").exists(), "run `make test` (it installs npm's openai)"
    script = NODE_DIR / "readme_example.mjs"
    script.write_text(_block("js"), encoding="utf-8")
    env = dict(os.environ)
    env.update(
        OPENAI_BASE_URL=gateway.base_url,
        OPENAI_API_KEY=gateway.api_key,
        RUNAPI_MODEL="MiniMax-M2.7",
    )
    done = subprocess.run(
        ["node", str(script)], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the example printed no completion"


def test_readme_python_example_streams(gateway: Gateway) -> None:
    code = _block("python").replace("http://127.0.0.1:8080/v1", gateway.base_url)
    code = code.replace('"sk-ra-..."', repr(gateway.api_key)).replace("SmolLM2-135M-Instruct", "MiniMax-M2.7")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
