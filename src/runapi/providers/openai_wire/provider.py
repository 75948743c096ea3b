"""A `Provider` for any upstream that speaks the Chat Completions wire.

The dialect (MiniMax, a generic OpenAI-compatible server) plugs in its `RequestBuilder` and
`ErrorMapper`; the HTTP exchange, SSE framing, chunk translation, stop sequences and cancellation are
the same for all of them and live here once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

import msgspec

from runapi.canonical import ChatRequest, Event
from runapi.canonical.stops import StopSequenceFilter
from runapi.catalog import ModelEntry
from runapi.errors import RunapiError, UpstreamError
from runapi.providers.http import UpstreamClient, UpstreamResponse
from runapi.providers.openai_wire.errors import ErrorMapper
from runapi.providers.openai_wire.request import RequestBuilder
from runapi.providers.openai_wire.sse import SSEDecoder
from runapi.providers.openai_wire.stream import StreamTranslator
from runapi.providers.openai_wire.wire import Chunk, chunk_decoder
from runapi.providers.think import ThinkMode
from runapi.providers.tool_tags import ToolTagParser

log = logging.getLogger(__name__)

CHAT_PATH = "/chat/completions"
_WHOLE_BODY_LIMIT = 32 * 1024 * 1024
_DONE = b"[DONE]"


class ChatCompletionsProvider:
    """Streams one generation per call; see `runapi.providers.base.Provider` for the contract."""

    def __init__(
        self,
        name: str,
        *,
        client: UpstreamClient,
        builder: RequestBuilder,
        errors: ErrorMapper,
        think_mode: ThinkMode = "never",
        tool_tags: bool = False,
        enforce_stop: bool = True,
        id_headers: tuple[str, ...] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.builder = builder
        self.errors = errors
        self.think_mode: ThinkMode = think_mode
        # Read MiniMax's raw `<minimax:tool_call>` blocks out of the text (a self-hosted model
        # served without a tool parser); only for requests that declare tools.
        self.tool_tags = tool_tags
        self.enforce_stop = enforce_stop
        self._id_headers = id_headers
        self._headers = headers

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.aclose()

    async def count_tokens(self, request: ChatRequest, model: ModelEntry) -> int | None:
        return None  # no local tokenizer for remote models

    async def stream(self, request: ChatRequest, model: ModelEntry) -> AsyncIterator[Event]:
        # Build first: a request we cannot map fails before any upstream I/O.
        body = self.builder.build(request, model)
        response = await self.client.post_json_stream(CHAT_PATH, body, self._headers)
        # One generator, no nested ones: closing it (client gone) runs `finally` at once, which
        # aborts the upstream connection.
        try:
            if response.status != 200:
                raise self.errors.from_http(response.status, await response.read(), response.header)
            state = _StreamState(self, request, self._upstream_id(response))
            first = True
            async for data in response:
                if first and data.lstrip()[:1] == b"{":
                    # Not a stream: an error envelope on a 200 (MiniMax `base_resp`), or a server
                    # that ignored `stream: true`. Either way one JSON document.
                    events = state.feed_document(data + await response.read(_WHOLE_BODY_LIMIT))
                else:
                    events = state.feed_sse(data)
                first = False
                for event in events:
                    yield event
                if state.error is not None:
                    raise state.error
                if state.ended:
                    await response.drain()  # so the connection goes back to the pool
                    return
            for event in state.end():
                yield event
            if state.error is not None:
                raise state.error
        finally:
            await response.aclose()

    def _upstream_id(self, response: UpstreamResponse) -> str | None:
        for name in self._id_headers:
            value = response.header(name)
            if value:
                return value
        return None

    def decode(self, payload: bytes) -> Chunk:
        """One payload as a chunk; an error payload raises its mapped error."""
        try:
            chunk: Chunk = chunk_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamError(
                f"The upstream '{self.name}' sent an unreadable stream chunk: {payload[:200]!r}"
            ) from exc
        error = self.errors.from_payload(chunk)
        if error is not None:
            raise error
        return chunk


class _StreamState:
    """The synchronous part of one stream: bytes in, events out.

    It never raises: a failure is kept in `error` so the events decoded before it (from the same
    network read) still reach the client first, then the error.
    """

    __slots__ = ("_decoder", "_pending", "_provider", "_stops", "_translator", "ended", "error")

    def __init__(
        self, provider: ChatCompletionsProvider, request: ChatRequest, upstream_id: str | None
    ) -> None:
        self._provider = provider
        self._decoder = SSEDecoder()
        self._translator = StreamTranslator(
            think_mode=provider.think_mode,
            stops=request.stop,
            upstream_id=upstream_id,
            tool_tags=ToolTagParser(request.tools) if provider.tool_tags and request.tools else None,
        )
        self._stops = StopSequenceFilter(request.stop) if provider.enforce_stop and request.stop else None
        self.ended = False
        self.error: RunapiError | None = None
        out: list[Event] = []
        self._translator.start(out)
        self._pending = out

    def feed_sse(self, data: bytes) -> list[Event]:
        out = self._take_pending()
        try:
            for payload in self._decoder.feed(data):
                if payload == _DONE:
                    self._translator.end(out, done=True)
                    self.ended = True
                    break
                self._translator.feed(self._provider.decode(payload), out)
        except RunapiError as exc:
            self._fail(exc)
        return self._filter(out)

    def feed_document(self, data: bytes) -> list[Event]:
        out = self._take_pending()
        try:
            self._translator.feed(self._provider.decode(data), out)
            self._translator.end(out, done=True)
        except RunapiError as exc:
            self._fail(exc)
        self.ended = True
        return self._filter(out)

    def end(self) -> list[Event]:
        """EOF: the last event may lack its blank line; then the stream must have finished."""
        out = self._take_pending()
        try:
            done = False
            for payload in self._decoder.finish():
                if payload == _DONE:
                    done = True
                    break
                self._translator.feed(self._provider.decode(payload), out)
            self._translator.end(out, done=done)
        except RunapiError as exc:
            self._fail(exc)
        self.ended = True
        events = self._filter(out)
        if self._stops is not None and self.error is None:
            events.extend(self._stops.finish())
        return events

    def _take_pending(self) -> list[Event]:
        out, self._pending = self._pending, []
        return out

    def _fail(self, exc: RunapiError) -> None:
        if self._stops is not None and self._stops.matched:
            # The client already has its whole answer; only the usage report is lost.
            log.warning("upstream failed after a stop sequence ended the turn: %r", exc)
            self.ended = True
            return
        self.error = exc

    def _filter(self, events: list[Event]) -> list[Event]:
        if self._stops is None:
            return events
        kept: list[Event] = []
        for event in events:
            kept.extend(self._stops.feed(event))
        return kept
