"""Run one admitted generation: provider events → surface frames, then settle.

The same loop serves sync, stream and async modes; only the `FrameSink` differs. Settlement
happens before the terminal frame is written, so the inline `usage.cost`, the task record and the
ledger agree by the time the client sees the end (runapi-contract §8.4).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from runapi.canonical import Event, Finished, ReasoningDelta, TextDelta, ToolCallDelta, Usage, UsageReport
from runapi.canonical.accumulate import Accumulator
from runapi.canonical.estimate import estimate_output_tokens
from runapi.errors import InternalError, RunapiError, UpstreamError
from runapi.pipeline.context import Generation

log = logging.getLogger("runapi.pipeline")

# Debit the output-token bucket every this many characters of output (about 256 tokens), so a
# long stream counts against OTPM as it runs without a limiter round trip per delta.
_OTPM_STEP_CHARS = 1024


class ClientGone(Exception):
    """The client closed the connection while we were writing to it."""


class FrameSink(Protocol):
    async def __call__(self, frame: bytes) -> None: ...


Settle = Callable[[Generation, RunapiError | None, bool], Awaitable[None]]
OutputDebit = Callable[[Generation, int], Awaitable[None]]


class UpstreamCall:
    """The provider call of one generation, opened before its events are read.

    `start` asks for the first event at once, in a task of its own, so the upstream works while
    the pipeline still waits for something else (the ledger writing the hold); `run_generation`
    then reads on from it. A call whose admission fails is dropped with `abandon`."""

    __slots__ = ("events", "first", "held_back", "ready_at", "started")

    def __init__(self, gen: Generation, *, streaming: bool) -> None:
        request = gen.decoded.request
        if gen.admission is not None and gen.admission.output_cap is not None:
            cap = gen.admission.output_cap
            if request.max_output_tokens is None or request.max_output_tokens > cap:
                request = request.with_changes(max_output_tokens=cap)
        # Upstream streams exactly when someone reads frames as they come (a client, or an async
        # task's event log); otherwise one whole response is cheaper to fetch and to decode.
        if request.stream != streaming:
            request = request.with_changes(stream=streaming)
        # Providers enforce stop sequences themselves (MiniMax ignores `stop`, llama.cpp applies
        # it), so that they can keep reading upstream for the usage after a match.
        self.events: AsyncIterator[Event] = gen.provider.stream(request, gen.model)
        self.first: asyncio.Future[Event] | None = None
        self.started = time.monotonic()
        self.ready_at: float | None = None  # when the first read finished
        # Time the upstream's answer waited for ours (the hold): the gateway's, not the upstream's.
        self.held_back = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self.first = asyncio.ensure_future(anext(self.events))
        self.first.add_done_callback(self._ready)

    def _ready(self, _: object) -> None:
        self.ready_at = time.monotonic()

    def admitted(self) -> None:
        """The admission it waited for is confirmed: from here on the generation reads it."""
        if self.ready_at is not None:
            self.held_back = time.monotonic() - self.ready_at

    async def abandon(self) -> None:
        """Drop the call: a pending first read is canceled (the provider closes its connection
        as it unwinds), then the stream is closed."""
        first = self.first
        if first is not None:
            if not first.done():
                first.cancel()
                await asyncio.wait({first})
            if not first.cancelled():
                first.exception()  # read, so it is not reported as never retrieved
        await _close(self.events)


class _Prefetched:
    """The provider's events when the first one was asked for ahead (`UpstreamCall.start`)."""

    __slots__ = ("_events", "_first")

    def __init__(self, first: asyncio.Future[Event], events: AsyncIterator[Event]) -> None:
        self._first: asyncio.Future[Event] | None = first
        self._events = events

    def __aiter__(self) -> _Prefetched:
        return self

    def __anext__(self) -> Awaitable[Event]:
        first, self._first = self._first, None
        return first if first is not None else self._events.__anext__()


class _FirstEventKeepalive:
    """The provider's events, with SSE comments sent while waiting for the first one (MiniMax
    thinks for seconds before its first byte; proxies and clients must not time out meanwhile).

    After the first event, `__anext__` hands out the provider's own awaitable: no extra async
    generator between the provider and the loop, which is one hop less per streamed token."""

    __slots__ = ("_events", "_first_read", "_interval", "_keepalive", "_run_on", "_sink", "_started")

    def __init__(
        self,
        events: AsyncIterator[Event],
        sink: FrameSink,
        keepalive: bytes,
        interval: float,
        run_on_without_client: bool,
        first: asyncio.Future[Event] | None = None,
    ) -> None:
        self._events = events
        self._first_read = first
        self._sink = sink
        self._keepalive = keepalive
        self._interval = interval
        self._run_on = run_on_without_client
        self._started = False

    def __aiter__(self) -> _FirstEventKeepalive:
        return self

    def __anext__(self) -> Awaitable[Event]:
        if self._started:
            return self._events.__anext__()
        self._started = True
        return self._first()

    async def _first(self) -> Event:
        first = self._first_read or asyncio.ensure_future(anext(self._events))
        try:
            while True:
                done, _ = await asyncio.wait({first}, timeout=self._interval)
                if done:
                    return first.result()  # StopAsyncIteration when there was nothing at all
                try:
                    await self._sink(self._keepalive)
                except ClientGone:
                    if not self._run_on:
                        raise
                    # An Idempotency-Key call runs on for its retry: wait without keepalives.
                    return await first
        except BaseException:
            first.cancel()
            raise


async def run_generation(
    gen: Generation,
    *,
    sink: FrameSink | None,
    encoder_event: Callable[[Event], bytes] | None,
    settle: Settle,
    debit_output: OutputDebit | None,
    keepalive: bytes = b"",
    keepalive_interval: float = 10.0,
    continue_without_client: bool = False,
) -> None:
    """Drive the provider to the end. Fills `gen.completion`/`gen.usage`; calls `settle` exactly
    once with the error (if any) and whether the client went away."""
    call = gen.upstream or UpstreamCall(gen, streaming=sink is not None)
    provider_events = call.events
    events: AsyncIterator[Event]
    if sink is not None:
        events = _FirstEventKeepalive(
            provider_events, sink, keepalive, keepalive_interval, continue_without_client, call.first
        )
    else:
        events = provider_events if call.first is None else _Prefetched(call.first, provider_events)
    acc = Accumulator()
    error: RunapiError | None = None
    client_gone = False
    debited_chars = 0
    try:
        async for event in events:
            acc.add(event)
            if sink is not None and encoder_event is not None:
                frame = encoder_event(event)
                if frame:
                    try:
                        await sink(frame)
                    except ClientGone:
                        client_gone = True
                        if not continue_without_client:
                            break
                        sink = None  # An Idempotency-Key call runs on; its retry gets the result.
            if (
                debit_output is not None
                and isinstance(event, TextDelta | ReasoningDelta | ToolCallDelta)
                and acc.output_chars - debited_chars >= _OTPM_STEP_CHARS
            ):
                step = acc.output_chars - debited_chars
                debited_chars = acc.output_chars
                await debit_output(gen, estimate_output_tokens(step))
    except RunapiError as exc:
        error = exc
    except ClientGone:  # while waiting for the first event (a keepalive found the client gone)
        client_gone = True
    except (asyncio.CancelledError, GeneratorExit):
        client_gone = True
        raise
    except Exception as exc:  # a bug in an adapter must still settle and answer cleanly
        log.exception("provider %s failed for task %s", gen.provider.name, gen.task_id)
        error = InternalError(f"The gateway failed while generating: {type(exc).__name__}.")
    finally:
        await _close(provider_events)
        gen.upstream_seconds = time.monotonic() - call.started - call.held_back
        gen.completion = acc.finish()
        finished = gen.completion.finish_reason is not None
        if error is None and not client_gone and not finished:
            error = UpstreamError("The upstream stream ended before the generation finished.")
        if error is None and gen.completion.usage is None:
            # We cut the stream (client gone), or the upstream finished without reporting usage
            # (servers that ignore include_usage). Bill what was produced, estimated, and say so
            # on the task (runapi-contract §12, option c).
            out = estimate_output_tokens(acc.output_chars)
            gen.completion.usage = Usage(
                input_tokens=gen.est_input_tokens, output_tokens=out, source="estimated"
            )
        gen.usage = gen.completion.usage
        await asyncio.shield(settle(gen, error, client_gone))


async def _close(stream: AsyncIterator[Event]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except (Exception, asyncio.CancelledError):  # closing must never mask the real outcome
            log.debug("closing a provider stream raised", exc_info=True)


def is_terminal_event(event: Event) -> bool:
    return isinstance(event, Finished | UsageReport)
