"""Fixtures for provider tests: catalog models, upstream settings and providers on the simulator.

The simulator process itself is the suite-wide `simulator` fixture (tests/conftest.py); these build
adapters on top of it. Reusable by other test packages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest

from runapi.canonical import ChatRequest, Completion, Event, Message, TextPart
from runapi.canonical.accumulate import Accumulator
from runapi.catalog import Catalog, ModelEntry, load_catalog
from runapi.providers.base import Provider
from runapi.settings import Settings, UpstreamSettings
from tests.procs import Proc


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def m27(catalog: Catalog) -> ModelEntry:
    return catalog.resolve("MiniMax-M2.7")


@pytest.fixture(scope="session")
def m3(catalog: Catalog) -> ModelEntry:
    return catalog.resolve("MiniMax-M3")


def user(text: str) -> Message:
    return Message(role="user", parts=(TextPart(text),))


def ask(model: str, text: str, **fields: object) -> ChatRequest:
    return ChatRequest(model=model, messages=(user(text),), stream=True, **fields)  # type: ignore[arg-type]


async def collect(provider: Provider, request: ChatRequest, model: ModelEntry) -> list[Event]:
    return [event async for event in provider.stream(request, model)]


async def drain(provider: Provider, request: ChatRequest, model: ModelEntry, seen: list[Event]) -> None:
    """Like `collect`, but the events stay in `seen` when the stream raises."""
    async for event in provider.stream(request, model):
        seen.append(event)


def fold(events: list[Event]) -> Completion:
    acc = Accumulator()
    for event in events:
        acc.add(event)
    return acc.finish()


@pytest.fixture
def sim_upstream(simulator: Proc) -> Callable[..., UpstreamSettings]:
    """Upstream settings pointing at the simulator; keyword overrides allowed."""

    def make(**overrides: object) -> UpstreamSettings:
        fields: dict[str, object] = {
            "kind": "minimax",
            "base_url": simulator.url + "/v1",
            "api_key": "sim-key",
            "read_timeout": 30.0,
        }
        fields.update(overrides)
        return UpstreamSettings(**fields)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def minimax(sim_upstream: Callable[..., UpstreamSettings]) -> AsyncIterator[Provider]:
    """The MiniMax adapter on the simulator (lean http:// pool), started and closed per test."""
    from runapi.providers.minimax import minimax_provider

    provider = minimax_provider("minimax", sim_upstream(), Settings())
    await provider.start()
    yield provider
    await provider.close()


class TapProxy:
    """A loopback TCP proxy in front of an upstream that records when the gateway side hangs up,
    so a test can see that closing a stream really closed the upstream connection."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.opened = 0
        self.closed_by_client = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()

        downstream = asyncio.ensure_future(pump(reader, up_writer))
        upstream = asyncio.ensure_future(pump(up_reader, writer))
        done, _ = await asyncio.wait({downstream, upstream}, return_when=asyncio.FIRST_COMPLETED)
        if downstream in done:
            self.closed_by_client.set()
        for task in (downstream, upstream):
            task.cancel()
        for w in (writer, up_writer):
            w.close()


@pytest.fixture
async def tap(simulator: Proc) -> AsyncIterator[TapProxy]:
    parts = urlsplit(simulator.url)
    proxy = TapProxy(parts.hostname or "127.0.0.1", parts.port or 80)
    await proxy.start()
    yield proxy
    await proxy.stop()
