"""`runapi serve --workers N`: one supervisor holding the port, N workers serving it.

Each test starts its own gateway (on each database backend, with Redis: workers share their limits
there) and looks at its process tree through /proc.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import openai
import pytest

from runapi.console.http import COOKIE
from tests.conftest import REDIS_URL
from tests.procs import Gateway, Proc, gateway_env, running_gateway, wait_for

MODEL = "MiniMax-M2.7"


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # The fields after the command name (which may hold spaces) start after its last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def workers_when(supervisor: int, ok: Callable[[set[int]], bool], what: str) -> set[int]:
    def check() -> set[int] | None:
        pids = children(supervisor)
        return pids if ok(pids) else None

    found = wait_for(check, 30, what=what)
    assert isinstance(found, set)
    return found


@pytest.fixture
def workers_gateway(simulator: Proc, own_database_url: str) -> Iterator[Gateway]:
    if REDIS_URL is None:
        pytest.skip("several workers share their limits through Redis: RUNAPI_TEST_REDIS_URL is not set")
    env = gateway_env(
        own_database_url, simulator.url, RUNAPI_LOCAL_PRELOAD="false", RUNAPI_REDIS_URL=REDIS_URL
    )
    with running_gateway(env, "100", "--workers", "2") as gw:
        yield gw


def completions(gw: Gateway, n: int) -> list[str]:
    texts = []
    for i in range(n):
        # A new client (so a new connection) each time: the kernel spreads them over the workers.
        with openai.OpenAI(base_url=gw.base_url, api_key=gw.api_key, max_retries=0, timeout=30) as client:
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"hi {i}"}]
            )
            texts.append(reply.choices[0].message.content or "")
    return texts


def _console(gw: Gateway, method: str, path: str, cookies: dict[str, str], form: str | None = None) -> Any:
    """One request over a new connection (so any worker may answer), as a browser sends it."""
    address = urllib.parse.urlsplit(gw.url)
    conn = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=30)
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=form, headers=headers)
        reply = conn.getresponse()
        reply.text = reply.read().decode()
        reply.cookies = {
            k: m.value for k, m in SimpleCookie(", ".join(reply.headers.get_all("Set-Cookie") or [])).items()
        }
        return reply
    finally:
        conn.close()


def console_sign_in(gw: Gateway) -> str:
    """Sign in to the console with the account's key, as a browser does; the session cookie."""
    form = _console(gw, "GET", "/console/login", {})
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None, form.text[:500]
    body = urllib.parse.urlencode({"login_token": token.group(1), "key": gw.api_key})
    reply = _console(gw, "POST", "/console/login", form.cookies, body)
    assert reply.status == 303, reply.text[:500]
    return str(reply.cookies[COOKIE])


def console_overview(gw: Gateway, cookie: str) -> int:
    """The account's overview page over a new connection: its status."""
    return int(_console(gw, "GET", "/console/overview", {COOKIE: cookie}).status)


def test_workers_serve_one_port_are_replaced_when_they_die_and_stop_together(
    workers_gateway: Gateway,
) -> None:
    gw = workers_gateway
    supervisor = gw.proc.popen.pid
    first = workers_when(gw.proc.popen.pid, lambda k: len(k) == 2, "two workers")
    seen_at = time.monotonic()
    # The supervisor loads none of the gateway (it is exec'd before any of it is imported), so it
    # holds a fraction of a worker's memory; forked from the CLI it held as much as a worker.
    assert rss_kb(supervisor) * 3 < min(rss_kb(pid) for pid in first), (rss_kb(supervisor), first)
    assert all(completions(gw, 6))
    cookie = console_sign_in(gw)
    assert [console_overview(gw, cookie) for _ in range(4)] == [200] * 4

    # A worker that dies once it has been serving is replaced (one that dies while starting stops
    # the service instead: the next test).
    time.sleep(max(0.0, 10.5 - (time.monotonic() - seen_at)))
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    now = workers_when(supervisor, lambda k: len(k) == 2 and victim not in k, "a new worker")
    assert len(now - first) == 1
    assert all(completions(gw, 6))

    # Once neither worker that saw the sign-in is left, the console session is still good: it is
    # shared state, like limits and balances (held in a worker's memory it signed people out).
    survivor = max(first)
    os.kill(survivor, signal.SIGKILL)
    now = workers_when(supervisor, lambda k: len(k) == 2 and not (k & first), "two new workers")
    assert [console_overview(gw, cookie) for _ in range(4)] == [200] * 4

    gw.proc.popen.terminate()
    assert gw.proc.popen.wait(timeout=30) == 0
    assert not children(supervisor)
    assert not any(Path(f"/proc/{pid}").exists() for pid in now)  # reaped before the supervisor left


def test_a_worker_dying_while_starting_stops_the_service(workers_gateway: Gateway) -> None:
    gw = workers_gateway
    workers = workers_when(gw.proc.popen.pid, lambda k: len(k) == 2, "two workers")
    os.kill(min(workers), signal.SIGKILL)  # within the first seconds: as if it could not start
    assert gw.proc.popen.wait(timeout=30) == 1
    assert not children(gw.proc.popen.pid)
    assert any("while starting; stopping" in line for line in gw.proc.log)
