"""Serve an aiohttp application on a socket, with the lean protocol in front of it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from aiohttp import web

from runapi.server.lean import LeanServer


class LeanSockSite(web.BaseSite):
    """`web.SockSite` whose connections start on the lean protocol (which hands the ones it does
    not serve to aiohttp's, `runner.server`). Stopping it closes the listener, then lets lean
    answers in flight finish; aiohttp's own connections are closed by the runner as usual."""

    __slots__ = ("_drain_seconds", "_lean", "_make_lean", "_name", "_sock")

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        make_lean: Callable[[web.Server], LeanServer],
        *,
        backlog: int = 4096,
        drain_seconds: float = 60.0,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._drain_seconds = drain_seconds
        self._sock = sock
        self._make_lean = make_lean
        self._lean: LeanServer | None = None
        host, port = sock.getsockname()[:2]
        self._name = f"http://{host}:{port}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def lean(self) -> LeanServer | None:
        return self._lean

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert isinstance(server, web.Server)
        self._lean = self._make_lean(server)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._lean, sock=self._sock, backlog=self._backlog)

    async def stop(self) -> None:
        await super().stop()
        if self._lean is not None:
            await self._lean.shutdown(grace_seconds=self._drain_seconds)


__all__ = ["LeanSockSite"]
