"""Waiting for the upstream's first event: keepalives meanwhile, and a client found gone by one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from runapi.canonical import Event, TextDelta
from runapi.pipeline.generate import ClientGone, _FirstEventKeepalive


class SlowUpstream:
    """Its first event comes after `delay` seconds; records whether it was cancelled."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.cancelled = False

    async def events(self) -> AsyncIterator[Event]:
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        yield TextDelta(text="hello")


class Sink:
    def __init__(self, gone_after: int | None = None) -> None:
        self.frames: list[bytes] = []
        self.gone_after = gone_after

    async def __call__(self, frame: bytes) -> None:
        if self.gone_after is not None and len(self.frames) >= self.gone_after:
            raise ClientGone()
        self.frames.append(frame)


async def test_keepalives_until_the_first_event() -> None:
    sink = Sink()
    events = _FirstEventKeepalive(SlowUpstream(0.25).events(), sink, b": ka\n\n", 0.05, False)
    first = await anext(events)
    assert first == TextDelta(text="hello")
    assert len(sink.frames) >= 3
    assert set(sink.frames) == {b": ka\n\n"}


async def test_a_client_found_gone_stops_the_wait_and_the_upstream() -> None:
    upstream = SlowUpstream(30.0)
    events = _FirstEventKeepalive(upstream.events(), Sink(gone_after=1), b": ka\n\n", 0.02, False)
    with pytest.raises(ClientGone):
        await asyncio.wait_for(anext(events), 5)
    await asyncio.sleep(0)
    assert upstream.cancelled


async def test_an_idempotent_call_waits_on_without_its_client() -> None:
    """Its retry gets the result, so the generation must run on (runapi-contract §2)."""
    upstream = SlowUpstream(0.2)
    sink = Sink(gone_after=1)
    events = _FirstEventKeepalive(upstream.events(), sink, b": ka\n\n", 0.02, True)
    assert await asyncio.wait_for(anext(events), 5) == TextDelta(text="hello")
    assert not upstream.cancelled
    assert sink.frames == [b": ka\n\n"]  # no keepalive after the client was found gone
