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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    return start_process(
        [PYTHON, "-m", "runapi.simulator", "--host", "127.0.0.1", "--port", "0", *extra], dict(os.environ)
    )


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
            [PYTHON, "-m", "runapi.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"runapi {' '.join(args)} failed: {done.stdout}\n{done.stderr}")
        return done.stdout

    def new_account(self, credit: str = "0") -> tuple[int, str]:
        data = json.loads(
            self.cli("accounts", "create", f"acct-{uuid.uuid4().hex[:6]}", "--credit", credit, "--json")
        )
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
    proc = start_process(
        [PYTHON, "-m", "runapi.cli.main", "serve", "--host", "127.0.0.1", "--port", "0", *args], env
    )
    try:
        yield Gateway(proc, env, str(data["api_key"]), int(data["account_id"]))
    finally:
        proc.stop()


def sqlite_url(tmp: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp / 'runapi.db'}"


def http_json(
    method: str,
    url: str,
    body: object | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, dict[str, str], object]:
    """A raw HTTP call for asserting on exact statuses, headers and bodies (stdlib only)."""
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
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


# ---------------------------------------------------------------- helpers for task/webhook e2e tests


def write_config(directory: Path, toml_text: str) -> str:
    """A gateway TOML config file (for settings no environment variable reaches, e.g.
    `[webhooks] retry_schedule`); pass it as `gateway_env(..., RUNAPI_CONFIG=path)`."""
    path = directory / f"runapi-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(toml_text, encoding="utf-8")
    return str(path)


def start_gateway_process(env: dict[str, str], *args: str) -> Proc:
    """Serve on an existing database (e.g. again after a kill), without creating an account."""
    serve = [PYTHON, "-m", "runapi.cli.main", "serve", "--host", "127.0.0.1", "--port", "0", *args]
    return start_process(serve, env)


@dataclass
class Tenant:
    """An account of its own (so tests never share rate limits or ledgers) and its first key."""

    account_id: int
    api_key: str
    key_id: str


def new_tenant(gw: Gateway, credit: str = "50", tier: int | None = 3) -> Tenant:
    """A fresh account with credit, pinned to `tier` (the default tier-0 limits are tiny)."""
    account_id, api_key = gw.new_account(credit)
    if tier is not None:
        gw.cli("accounts", "set-tier", str(account_id), str(tier))
    keys = db_rows(
        gw.env["RUNAPI_DATABASE_URL"], "SELECT id FROM api_keys WHERE account_id = :a", a=account_id
    )
    return Tenant(account_id, api_key, str(keys[0]["id"]))


def db_rows(database_url: str, sql: str, **params: object) -> list[dict[str, Any]]:
    """Read the gateway's own database (read-only checks: ledger, holds, task rows)."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> list[dict[str, Any]]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(text(sql), params)
                return [dict(row._mapping) for row in result]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll `predicate` until it returns something truthy (bounded); return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- helpers for billing/limits e2e tests


def catalog_prices(model: str) -> dict[str, Decimal]:
    """USD per 1M tokens (= micro-dollars per token) of `model`, read straight from the shipped
    catalog file, so tests price calls without going through the gateway's billing code."""
    import tomllib
    from importlib import resources

    text = resources.files("runapi.catalog").joinpath("models.toml").read_text(encoding="utf-8")
    for entry in tomllib.loads(text)["models"]:
        if entry["id"] == model:
            prices = {"input": "0", "output": "0", "cache_read": "0", "cache_write": "0", **entry["prices"]}
            return {name: Decimal(value) for name, value in prices.items()}
    raise KeyError(model)


def tier_limits(tier: int) -> dict[str, int]:
    """rpm/itpm/otpm/concurrent of a tier, read straight from the shipped tier table."""
    import tomllib
    from importlib import resources

    text = resources.files("runapi.limits").joinpath("tiers.toml").read_text(encoding="utf-8")
    for entry in tomllib.loads(text)["tiers"]:
        if entry["tier"] == tier:
            return {name: int(entry[name]) for name in ("rpm", "itpm", "otpm", "concurrent")}
    raise KeyError(tier)


@dataclass(frozen=True)
class SimCall:
    """A user prompt carrying an `@sim` directive, with the usage the simulator will report for it
    (its documented tokenization rule, README "Tokenization rule")."""

    text: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reasoning_tokens: int

    def cost_micros(self, model: str) -> int:
        """runapi-contract §8.2, computed here: tokens x USD/1M per class, rounded once half-up."""
        from decimal import ROUND_HALF_UP

        p = catalog_prices(model)
        exact = (
            (self.prompt_tokens - self.cached_tokens) * p["input"]
            + self.cached_tokens * p["cache_read"]
            + self.completion_tokens * p["output"]
        )
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def sim_call(prompt: str, *, tokens: int, reasoning: int = 0, cached: int = 0, extra: str = "") -> SimCall:
    """`prompt` plus `@sim tokens=.. reasoning=..`; sent as the only (user) message."""
    from runapi.simulator import count_prompt_tokens

    directive = f"@sim tokens={tokens} reasoning={reasoning}"
    if cached:
        directive += f" cached={cached}"
    if extra:
        directive += " " + extra
    text = f"{prompt}\n{directive}"
    prompt_tokens = count_prompt_tokens({"messages": [{"role": "user", "content": text}]})
    return SimCall(text, prompt_tokens, min(cached, prompt_tokens), tokens + reasoning, reasoning)


def key_id_of(gw: Gateway, account_id: int) -> str:
    keys = json.loads(gw.cli("keys", "list", "--account", str(account_id), "--json"))
    return str(keys[0]["id"])


def get_task(gw: Gateway, api_key: str, task_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """`GET /v1/tasks/{id}` once the task is terminal (records are written behind; bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        auth = {"Authorization": f"Bearer {api_key}"}
        status, _, body = http_json("GET", f"{gw.url}/v1/tasks/{task_id}", headers=auth)
        terminal = isinstance(body, dict) and body.get("status") in ("completed", "failed", "canceled")
        if status == 200 and terminal:
            assert isinstance(body, dict)
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} not terminal after {timeout}s: {status} {body}")
        time.sleep(0.05)


def account_row(database_url: str, account_id: int) -> dict[str, Any]:
    rows = db_rows(
        database_url,
        "SELECT balance_micros, held_micros, tier FROM accounts WHERE id = :a",
        a=account_id,
    )
    assert len(rows) == 1
    return rows[0]


def ledger_of(database_url: str, account_id: int) -> list[dict[str, Any]]:
    """Every ledger entry of an account, oldest first."""
    return db_rows(
        database_url,
        "SELECT type, amount_micros, task_id, idempotency_key, created_at FROM ledger_entries "
        "WHERE account_id = :a ORDER BY created_at, id",
        a=account_id,
    )


def http_raw(
    method: str,
    url: str,
    body: object | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, dict[str, str], bytes]:
    """Like `http_json`, but the body comes back as the raw bytes (SSE, byte-exact checks)."""
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()
