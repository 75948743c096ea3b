"""Fixtures: an in-process simulator on 127.0.0.1 and a small client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from runapi.simulator import SimConfig, build_app

from .helpers import Sim

SimFactory = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """Start simulators with a given config; all are shut down after the test."""
    servers: list[TestServer] = []
    sessions: list[aiohttp.ClientSession] = []

    async def factory(config: SimConfig | None = None) -> Sim:
        server = TestServer(build_app(config or SimConfig()), host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        session = aiohttp.ClientSession()
        sessions.append(session)
        return Sim(base_url=str(server.make_url("")).rstrip("/"), session=session)

    yield factory
    for session in sessions:
        await session.close()
    for server in servers:
        await server.close()


@pytest.fixture
async def sim(make_sim: SimFactory) -> Sim:
    """A simulator with the default config."""
    return await make_sim()
