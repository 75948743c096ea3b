"""`runapi serve`: run the gateway, with N worker processes sharing the port."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Coroutine
from typing import Any

import msgspec
from aiohttp import web

from runapi.auth import AccountRepository, KeyRepository
from runapi.settings import Settings
from runapi.store.database import Database

log = logging.getLogger("runapi")


async def ensure_default_account(settings: Settings) -> str | None:
    """On first start with an empty database, create an account and return its new key."""
    db = Database(settings.database_url)
    try:
        await db.migrate()
        accounts = AccountRepository(db)
        if await accounts.count() > 0:
            return None
        account = await accounts.create("default")
        key = await KeyRepository(db).create(account.id, name="default")
        return key.secret
    finally:
        await db.dispose()


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _bind(settings: Settings) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


async def _freeze_startup_heap(app: web.Application) -> None:
    """What startup built (modules, the catalog, SQLAlchemy's compiled caches, the model's
    bindings) lives as long as the process. Frozen, it is out of the cyclic collector's sight:
    a full collection then scans only what requests allocate, instead of pausing every request
    in flight for the whole heap. (Each worker builds its app after the fork, so this is per
    process, not about sharing pages with the parent.)"""
    gc.collect()
    gc.freeze()


def serve_on(sock: socket.socket, settings: Settings, announce: str | None) -> None:
    from runapi.wiring import build_gateway

    _install_uvloop()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = build_gateway(settings)
    app.on_startup.append(_freeze_startup_heap)
    if announce is not None:

        async def ready(app: web.Application) -> None:
            # Printed once startup (migrations, model load, recovery) has succeeded, so whoever
            # waits for this line knows the gateway answers.
            print(announce, flush=True)

        app.on_startup.append(ready)
    # handler_cancellation: a client that disconnects cancels its handler, so a sync request's
    # upstream call stops too (the pipeline settles what was produced). The lean server does
    # the same for the generation routes.
    if not settings.lean_server:
        web.run_app(
            app, sock=sock, print=None, handle_signals=True, access_log=None, handler_cancellation=True
        )
        return
    _run_until_signal(_serve_lean(app, sock, settings))


async def _serve_lean(app: web.Application, sock: socket.socket, settings: Settings) -> None:
    from runapi.app import LEAN_ROUTES, internal_error_reply
    from runapi.server.lean import LeanHandler, LeanServer
    from runapi.server.site import LeanSockSite

    routes: dict[str, LeanHandler] = app[LEAN_ROUTES]

    def make_lean(fallback: web.Server) -> LeanServer:
        return LeanServer(
            routes,
            fallback,
            max_body_bytes=settings.max_body_bytes,
            on_error=internal_error_reply,
        )

    runner = web.AppRunner(app, handle_signals=True, access_log=None, handler_cancellation=True)
    await runner.setup()
    try:
        await LeanSockSite(runner, sock, make_lean).start()
        await asyncio.get_running_loop().create_future()  # until SIGTERM/SIGINT (GracefulExit)
    finally:
        await runner.cleanup()


def _run_until_signal(main: Coroutine[Any, Any, None]) -> None:
    """What `web.run_app` does around its own sites: run until a signal, then clean up."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(main)
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, web.GracefulExit):
            loop.run_until_complete(task)  # its `finally` runs the app's cleanup
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def serve(settings: Settings) -> None:
    sock = _bind(settings)
    host, port = sock.getsockname()[:2]
    announce = f"runapi listening on http://{host}:{port}"
    if settings.workers <= 1:
        serve_on(sock, settings, announce)
        return
    # Workers share the listening socket (pre-fork); shared state lives in the database and Redis.
    # The supervisor replaces this process (same pid), so the CLI's heap is not what they fork from.
    # An unlinked file, left open across the exec: the settings reach the workers only by its fd.
    resolved = tempfile.TemporaryFile()  # noqa: SIM115
    resolved.write(msgspec.msgpack.encode(settings))
    resolved.flush()
    os.set_inheritable(resolved.fileno(), True)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "runapi.cli.supervisor"]
    argv += [str(sock.fileno()), str(resolved.fileno()), str(settings.workers), announce]
    os.execv(sys.executable, argv)
