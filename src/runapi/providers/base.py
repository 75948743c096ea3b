"""The provider interface: one adapter per upstream kind, speaking only canonical types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from runapi.canonical import ChatRequest, Event
from runapi.catalog import ModelEntry


@runtime_checkable
class Provider(Protocol):
    """An upstream adapter.

    `stream` yields canonical events for one generation: optionally `UpstreamInfo` first, then
    deltas, then exactly one `Finished` and one `UsageReport` (usage as the upstream reported it).
    Failures are raised as `runapi.errors.RunapiError` subclasses, before or during the stream.
    Closing the iterator early (client gone) must cancel the upstream request promptly.
    """

    name: str

    def stream(self, request: ChatRequest, model: ModelEntry) -> AsyncIterator[Event]: ...

    async def count_tokens(self, request: ChatRequest, model: ModelEntry) -> int | None:
        """Exact input tokens when the provider can count them locally, else None."""
        ...

    async def start(self) -> None:
        """Open pools, load weights. Called once from the app's startup."""
        ...

    async def close(self) -> None: ...
