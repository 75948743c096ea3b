"""Start and stop the servers under test as OS processes, each logging to its own file."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent  # children import `bench` from here
_LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass
class Server:
    """A running server process; its stdout/stderr go to `log_path`."""

    name: str
    popen: subprocess.Popen[str]
    log_path: Path
    url: str = ""
    _tail: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        return "".join(self._tail[-lines:])

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process (multi-worker parents forward it), then SIGKILL its group if it lingers."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                # Its own session (start_new_session), so the group is exactly this server's tree.
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)


def _pump(server: Server, found: threading.Event, pattern: re.Pattern[str] | None) -> None:
    assert server.popen.stdout is not None
    with server.log_path.open("a", encoding="utf-8") as log:
        for line in server.popen.stdout:
            log.write(line)
            log.flush()
            server._tail.append(line)
            if len(server._tail) > 400:
                del server._tail[:200]
            if pattern is not None and not found.is_set():
                match = pattern.search(line)
                if match:
                    server.url = match.group(1).rstrip("/")
                    found.set()
    found.set()  # the process ended: stop waiting


def spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> tuple[Server, threading.Event]:
    log_path = log_dir / f"{name}.log"
    log_path.write_text(f"$ {' '.join(args)}\n")
    popen = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        cwd=REPO,
        start_new_session=True,  # Ctrl-C in the terminal reaches the runner only; it stops us in order
    )
    server = Server(name, popen, log_path)
    return server, threading.Event()


def start_announcing(
    name: str, args: list[str], env: dict[str, str], log_dir: Path, timeout_s: float
) -> Server:
    """Start a server that prints `... listening on http://HOST:PORT`; wait (bounded) for that line."""
    server, found = spawn(name, args, env, log_dir)
    threading.Thread(target=_pump, args=(server, found, _LISTENING), daemon=True).start()
    found.wait(timeout_s)
    if not server.url:
        server.stop(grace_s=2)
        raise RuntimeError(f"{name} did not start within {timeout_s:.0f}s:\n{server.tail()}")
    return server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_polled(
    name: str,
    args: list[str],
    env: dict[str, str],
    log_dir: Path,
    url: str,
    health_path: str,
    timeout_s: float,
) -> Server:
    """Start a server that does not announce itself; poll `health_path` until it answers 200."""
    server, found = spawn(name, args, env, log_dir)
    threading.Thread(target=_pump, args=(server, found, None), daemon=True).start()
    server.url = url
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{name} exited while starting:\n{server.tail()}")
        try:
            with urllib.request.urlopen(url + health_path, timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    server.stop(grace_s=2)
    raise RuntimeError(f"{name} did not answer {health_path} within {timeout_s:.0f}s:\n{server.tail()}")


def start_simulator(log_dir: Path) -> Server:
    # Zero latency: ttft 0 and no token pacing, unless a request's @sim directive asks for it.
    args = [
        PYTHON,
        "-m",
        "runapi.simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--ttft-ms",
        "0",
        "--tps",
        "0",
    ]
    return start_announcing("simulator", args, dict(os.environ), log_dir, timeout_s=30)


def start_passthrough(upstream: str, log_dir: Path) -> Server:
    args = [PYTHON, "-m", "bench.passthrough", "--upstream", upstream, "--host", "127.0.0.1", "--port", "0"]
    return start_announcing("passthrough", args, dict(os.environ), log_dir, timeout_s=30)
