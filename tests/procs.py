"""Start the real simulator and the real gateway as OS processes, for integration tests."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # noqa: F401  (imported so a missing driver fails loudly here, not in a child)

PYTHON = sys.executable
_LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    url: str
    log: list[str] = field(default_factory=list)

    def stop(self, sig_kill: bool = False) -> None:
        if self.popen.poll() is None:
            if sig_kill:
                self.popen.kill()
            else:
                self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def start_process(args: list[str], env: dict[str, str], timeout: float = 60.0) -> Proc:
    """Run `args`, wait for its 'listening on URL' line (bounded), return the process."""
    popen = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert popen.stdout is not None
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([popen.stdout], [], [], 0.2)
        if ready:
            line = popen.stdout.readline()
            if not line and popen.poll() is not None:
                break
            lines.append(line)
            match = _LISTENING.search(line)
            if match:
                proc = Proc(popen, match.group(1), lines)
                _drain_in_background(proc)
                return proc
        elif popen.poll() is not None:
            break
    popen.kill()
    raise RuntimeError(f"{args} did not start:\n{''.join(lines)}")


def _drain_in_background(proc: Proc) -> None:
    """Keep reading the child's output so a full pipe never blocks it."""
    import threading

    def pump() -> None:
        assert proc.popen.stdout is not None
        for line in proc.popen.stdout:
            proc.log.append(line)
            if os.environ.get("RUNAPI_TEST_ECHO"):
                sys.stderr.write(line)

    threading.Thread(target=pump, daemon=True).start()


def start_simulator(*extra: str) -> Proc:
    return start_process([PYTHON, "-m", "runapi.simulator", "--host", "127.0.0.1", "--port", "0", *extra], dict(os.environ))


def fresh_postgres_url(base: str) -> str:
    """A new, empty database on the test server (dropped by `drop_postgres`)."""
    import asyncio

    import asyncpg as pg

    name = f"runapi_t_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await pg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    root, _, _ = base.rpartition("/")
    return f"{root}/{name}"


def drop_postgres(url: str) -> None:
    import asyncio

    import asyncpg as pg

    root, _, name = url.rpartition("/")

    async def drop() -> None:
        conn = await pg.connect(f"{root}/postgres".replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@dataclass
class Gateway:
    proc: Proc
    env: dict[str, str]
    api_key: str
    account_id: int

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def base_url(self) -> str:
        return self.proc.url + "/v1"

    def cli(self, *args: str) -> str:
        """Run a `runapi` CLI command against this gateway's database; return stdout."""
        done = subprocess.run(
            [PYTHON, "-m", "runapi.cli.main", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"runapi {' '.join(args)} failed: {done.stdout}\n{done.stderr}")
        return done.stdout

    def new_account(self, credit: str = "0") -> tuple[int, str]:
        data = json.loads(self.cli("accounts", "create", f"acct-{uuid.uuid4().hex[:6]}", "--credit", credit, "--json"))
        return int(data["account_id"]), str(data["api_key"])


def gateway_env(database_url: str, sim_url: str | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "RUNAPI_DATABASE_URL": database_url,
            "RUNAPI_KEY_CACHE_SECONDS": "0",
            "RUNAPI_ADMIN_KEY": "admin-test-key",
            "RUNAPI_LOG_LEVEL": "warning",
            "RUNAPI_WEBHOOKS_ALLOW_HTTP": "true",
            "RUNAPI_WEBHOOKS_ALLOW_PRIVATE": "true",
        }
    )
    env.pop("RUNAPI_CONFIG", None)
    env.pop("MINIMAX_BASE_URL", None)
    env.pop("MINIMAX_API_KEY", None)
    if sim_url:
        env["MINIMAX_BASE_URL"] = sim_url + "/v1"
        env["MINIMAX_API_KEY"] = "sim-key"
    env.update(extra)
    return env


@contextmanager
def running_gateway(env: dict[str, str], credit: str = "100", *args: str) -> Iterator[Gateway]:
    setup = subprocess.run(
        [PYTHON, "-m", "runapi.cli.main", "accounts", "create", "tester", "--credit", credit, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if setup.returncode != 0:
        raise RuntimeError(setup.stdout + setup.stderr)
    data = json.loads(setup.stdout.strip().splitlines()[-1])
    proc = start_process([PYTHON, "-m", "runapi.cli.main", "serve", "--host", "127.0.0.1", "--port", "0", *args], env)
    try:
        yield Gateway(proc, env, str(data["api_key"]), int(data["account_id"]))
    finally:
        proc.stop()


def sqlite_url(tmp: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp / 'runapi.db'}"


def http_json(
    method: str, url: str, body: object | None = None, headers: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, dict[str, str], object]:
    """A raw HTTP call for asserting on exact statuses, headers and bodies (stdlib only)."""
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status, hdrs = resp.status, {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as err:
        raw = err.read()
        status, hdrs = err.code, {k.lower(): v for k, v in err.headers.items()}
    try:
        parsed: object = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, hdrs, parsed
