"""Our gateway under test: every feature on, tier limits raised so they never throttle the load.

The limiter, holds and settlement, and the task store all run; only the *numbers* of the tier
table are lifted (through the documented `[[limits.tiers]]` override), because tier 0 allows
10 requests a minute and a benchmark sends thousands a second.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.servers import PYTHON, REPO, Server, start_announcing

_HUGE = 1_000_000_000
# Every shipped tier (0 = Free … 5 = Enterprise): whichever one the bench account lands on.
_TIERS = range(6)


def bench_config_text(max_upstream_connections: int) -> str:
    lines = ["# Written by bench/ours.py for one benchmark run.", 'log_level = "warning"', ""]
    for tier in _TIERS:
        lines += [
            "[[limits.tiers]]",
            f"tier = {tier}",
            f"rpm = {_HUGE}",
            f"itpm = {_HUGE * 1000}",
            f"otpm = {_HUGE * 1000}",
            f"concurrent = {_HUGE}",
            f'monthly_spend_cap_usd = "{_HUGE}"',
            "",
        ]
    lines += [
        # Thousands of concurrent streams each hold an upstream connection; the shipped pool of 256
        # would queue the rest (section c measures the gateway, not the pool size).
        "[upstreams.minimax]",
        'kind = "minimax"',
        f"max_connections = {max_upstream_connections}",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class OursSetup:
    database_url: str
    redis_url: str | None
    workers: int
    limits_enabled: bool = True


def gateway_env(setup: OursSetup, simulator_url: str, config_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNAPI_", "MINIMAX_"))}
    env.update(
        {
            "RUNAPI_CONFIG": str(config_path),
            "RUNAPI_DATABASE_URL": setup.database_url,
            "RUNAPI_LOG_LEVEL": "warning",
            "RUNAPI_LIMITS_ENABLED": "true" if setup.limits_enabled else "false",
            "MINIMAX_BASE_URL": simulator_url + "/v1",
            "MINIMAX_API_KEY": "bench-upstream-key",
            # The bench never calls the embedded model; preloaded (the one-worker default) its
            # weights add about 200 MB to every RSS figure. It still loads on first use.
            "RUNAPI_LOCAL_PRELOAD": "false",
        }
    )
    if setup.redis_url:
        env["RUNAPI_REDIS_URL"] = setup.redis_url
    return env


def create_account(env: dict[str, str], timeout_s: float = 120) -> str:
    """A funded account and its key, through the CLI (as an operator would); returns the key."""
    done = subprocess.run(
        [PYTHON, "-m", "runapi.cli.main", "accounts", "create", "bench", "--credit", "1000000", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise RuntimeError(f"`runapi accounts create` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return str(data["api_key"])


def start_ours(
    name: str, setup: OursSetup, simulator_url: str, work_dir: Path, log_dir: Path
) -> tuple[Server, str]:
    config_path = work_dir / f"{name}.toml"
    config_path.write_text(bench_config_text(max_upstream_connections=16_384))
    env = gateway_env(setup, simulator_url, config_path)
    key = create_account(env)
    args = [
        PYTHON,
        "-m",
        "runapi.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        str(setup.workers),
    ]
    server = start_announcing(name, args, env, log_dir, timeout_s=60)
    return server, key
