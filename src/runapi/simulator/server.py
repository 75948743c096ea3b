"""Serving the simulator as a process: bind, announce, run until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from .app import build_app
from .config import SimConfig

__all__ = ["listening_line", "run", "serve"]


def listening_line(host: str, port: int) -> str:
    """The line printed once the socket is bound; test fixtures wait for it."""
    shown = f"[{host}]" if ":" in host else host
    return f"simulator listening on http://{shown}:{port}"


def _announce(host: str, port: int) -> None:
    print(listening_line(host, port), flush=True)


def _bind(host: str, port: int) -> socket.socket:
    # Binding ourselves (rather than letting aiohttp do it) is what lets us report the real
    # port when asked for port 0.
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(
    host: str,
    port: int,
    config: SimConfig,
    *,
    ready: Callable[[str, int], None] | None = _announce,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever); call ``ready(host, bound_port)`` once listening."""
    # A short grace period: a paced stream may have minutes left, and a fake upstream should
    # not hold up the test run or a Ctrl-C.
    runner = web.AppRunner(build_app(config), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    sock = _bind(host, port)
    try:
        await web.SockSite(runner, sock).start()
        if ready is not None:
            ready(host, sock.getsockname()[1])
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
        sock.close()


def run(host: str, port: int, config: SimConfig) -> None:
    """Serve the simulator until interrupted (blocking). Uses uvloop when it is installed.

    Prints ``simulator listening on http://HOST:PORT`` (the real port, also for port 0) once bound.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
                loop.add_signal_handler(sig, stop.set)
        await serve(host, port, config, stop=stop)

    _run(main())


def _run(main: Coroutine[Any, Any, None]) -> None:
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if sys.platform != "win32":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main)
