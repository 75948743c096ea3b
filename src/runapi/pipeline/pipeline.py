"""The one request path: authenticate → admit (limits) → hold → route → stream → settle → record.

Surfaces are codecs, providers are adapters; this module orders the steps between them and is
the only place that does.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import msgspec

from runapi.auth.keys import presented_key
from runapi.canonical.codec import ResponseMeta, Surface
from runapi.canonical.estimate import estimate_input_tokens
from runapi.errors import ErrorKind, RunapiError
from runapi.ids import new_ulid
from runapi.pipeline.context import Generation
from runapi.pipeline.generate import ClientGone, UpstreamCall, run_generation
from runapi.pipeline.headers import Prefer, client_request_id, idempotency_key
from runapi.pipeline.hooks import PipelineHooks
from runapi.server.exchange import SSE_HEADERS, STREAMED, Answer, Exchange, Reply
from runapi.services import Services

log = logging.getLogger("runapi.pipeline")

#: Time spent in the gateway, upstream excluded (milliseconds, as text). Sync answers: the whole
#: request minus the wait on the provider; streams: the time before the upstream call.
OVERHEAD_HEADER = "x-runapi-overhead-ms"


class Pipeline:
    def __init__(self, services: Services, hooks: PipelineHooks) -> None:
        self.services = services
        self.hooks = hooks
        self.settings = services.settings
        self._max_body = services.settings.max_body_bytes

    # ------------------------------------------------------------------ entry point

    async def handle(self, request: Exchange, surface: Surface) -> Answer:
        received = time.monotonic()
        rid = "req_" + new_ulid()
        headers: dict[str, str] = {"x-request-id": rid, "request-id": rid}
        gen: Generation | None = None
        try:
            body = await request.read_body(self._max_body)
            principal = await self.services.keys.authenticate(presented_key(request.headers))
            decoded = surface.decode(body)
            if decoded.gateway.previous_response_id is not None:
                decoded = await self.hooks.with_history(decoded, principal)
            model = self.services.catalog.resolve(decoded.request.model)
            provider = self.services.providers.for_model(model)
            crid = client_request_id(request.headers)
            if crid is not None:
                headers["X-Client-Request-Id"] = crid
            idem = idempotency_key(request.headers)
            prefer = Prefer.parse(request.headers)
            async_mode = (
                prefer.respond_async or prefer.wait is not None or decoded.gateway.callback_url is not None
            )
            if decoded.gateway.callback_url is not None:
                self.hooks.validate_callback_url(decoded.gateway.callback_url)
            ulid = new_ulid()
            meta = ResponseMeta(
                surface_id=surface.id_prefix + ulid,
                task_id="task_" + ulid,
                request_id=rid,
                model=decoded.requested_model or model.id,
                created=int(time.time()),
                include_usage=decoded.include_usage,
            )
            est = estimate_input_tokens(decoded.request)
            meta.input_token_estimate = est
            mode = (
                "async"
                if async_mode or decoded.gateway.background
                else ("stream" if decoded.request.stream else "sync")
            )
            gen = Generation(
                surface=surface,
                decoded=decoded,
                principal=principal,
                model=model,
                provider=provider,
                meta=meta,
                ulid=ulid,
                est_input_tokens=est,
                mode=mode,
                idempotency_key=idem,
                client_request_id=crid,
                fingerprint=_fingerprint(request, body) if idem else None,
                prefer_wait=prefer.wait,
                started_monotonic=received,
            )
            replay = await self.hooks.claim_idempotency(gen)
            if replay is not None:
                return await self.hooks.replay(request, gen, replay, headers)
            try:
                await self.hooks.admit(gen)
                if gen.pending_admission is not None:
                    # The hold is being written: let the upstream start meanwhile (a database
                    # trip off the added latency). Nothing of it is used before the hold holds.
                    gen.upstream = UpstreamCall(gen, streaming=gen.mode == "stream")
                    gen.upstream.start()
                    await self.hooks.confirm_admission(gen)
                    gen.upstream.admitted()
            except BaseException:
                await _drop_upstream(gen)
                await self.hooks.release_idempotency(gen)
                raise
            headers.update(self.hooks.rate_limit_headers(gen))
            headers["X-RunAPI-Task-Id"] = gen.task_id
            try:
                await self.hooks.task_created(gen)
            except BaseException:
                # Until the run below owns the generation, a failure here settles nothing: give
                # back what admission took (a full task buffer makes callers wait, and leave).
                await _drop_upstream(gen)
                await asyncio.shield(self.hooks.give_back(gen))
                raise
        except RunapiError as exc:
            if gen is not None:
                headers.update(self.hooks.rate_limit_headers(gen))
            headers[OVERHEAD_HEADER] = _ms(time.monotonic() - received)
            return self._error(surface, exc, headers)

        if gen.mode == "async":
            headers[OVERHEAD_HEADER] = _ms(time.monotonic() - received)
            try:
                return await self.hooks.submit_async(request, gen, headers, self._run_detached)
            except RunapiError as exc:  # e.g. the async queue is full: release what admission took
                await self._settle(gen, exc, False)
                return self._error(surface, exc, headers)
        with self.hooks.tracking(gen):
            if gen.mode == "stream":
                return await self._stream(request, gen, headers)
            return await self._sync(gen, headers)

    # ------------------------------------------------------------------ modes

    async def _sync(self, gen: Generation, headers: dict[str, str]) -> Reply:
        await run_generation(
            gen,
            sink=None,
            encoder_event=None,
            settle=self._settle,
            debit_output=self.hooks.debit_output,
        )
        headers[OVERHEAD_HEADER] = _ms(time.monotonic() - gen.started_monotonic - gen.upstream_seconds)
        return Reply(gen.response_status, headers, gen.response_body or b"")

    async def _stream(self, request: Exchange, gen: Generation, headers: dict[str, str]) -> Answer:
        """Stream the generation; the response starts with the upstream's first event.

        Until then nothing is sent: a failure before the first token is answered with its own HTTP
        status in the caller's dialect (so the SDKs' retries of 429/5xx work), as OpenAI and
        Anthropic do. An upstream slower than the keepalive interval opens the stream with a
        keepalive instead (protocols.md §6.9), after which failures travel in the stream."""
        encoder = gen.stream_encoder = gen.surface.stream_encoder(gen.meta, gen.decoded)
        # The overhead header is the admission part (auth, limits, hold, task); the per-token
        # part is measured by the bench, not in a header.
        headers[OVERHEAD_HEADER] = _ms(time.monotonic() - gen.started_monotonic)
        publish = self.hooks.event_publisher(gen)

        # Rendered now (the Responses surface numbers its events as it renders them), sent with
        # the first event.
        start = gen.stream_start = encoder.start()

        async def sink(frame: bytes) -> None:
            wire = frame
            if not gen.stream_started:
                gen.stream_started = True
                if publish is not None:
                    publish(start)
                wire = start + frame  # headers, start and first event leave together
            if publish is not None:
                publish(frame)
            try:
                if not request.stream_started:
                    await request.start_stream(200, {**headers, **SSE_HEADERS})
                await request.write(wire)
            except ConnectionError as exc:
                raise ClientGone() from exc

        await run_generation(
            gen,
            sink=sink,
            encoder_event=encoder.event,
            settle=self._settle,
            debit_output=self.hooks.debit_output,
            keepalive=encoder.keepalive(),
            keepalive_interval=self.settings.stream_keepalive_seconds,
            continue_without_client=gen.idempotency_key is not None,
        )
        tail = gen.tail or b""
        if not gen.stream_started:
            if gen.failure is not None:
                return self._error(gen.surface, gen.failure, headers)
            tail = start + tail  # no event rendered a frame: still a whole stream
        # The tail was rendered (and added to the task's event log) at settlement; written here,
        # not through `sink`, so the log does not get it twice.
        try:
            if not request.stream_started:
                await request.start_stream(200, {**headers, **SSE_HEADERS})
            await request.write(tail)
            await request.end_stream()
        except ConnectionError:
            pass
        return STREAMED

    async def _run_detached(self, gen: Generation) -> None:
        """Async mode: the same loop with no client attached; frames feed the task's event log."""
        if gen.refused_while_pending is not None:  # waited for a concurrency slot past its deadline
            await self._settle(gen, gen.refused_while_pending, False)
            return
        publish = self.hooks.event_publisher(gen)
        encoder = gen.surface.stream_encoder(gen.meta, gen.decoded)
        gen.stream_encoder = encoder if publish is not None else None
        sink = None
        if publish is not None:
            publish(encoder.start())
            gen.stream_started = True

            async def publish_sink(frame: bytes) -> None:
                publish(frame)

            sink = publish_sink
        await run_generation(
            gen,
            sink=sink,
            encoder_event=encoder.event if sink is not None else None,
            settle=self._settle,
            debit_output=self.hooks.debit_output,
        )

    # ------------------------------------------------------------------ settle

    async def _settle(self, gen: Generation, error: RunapiError | None, client_gone: bool) -> None:
        """Post or void the hold, render the final body, record the task. Runs exactly once."""
        if gen.settled:
            return
        gen.settled = True
        completion = gen.completion
        try:
            if error is not None:
                gen.status, gen.failure = "failed", error
                gen.error, gen.error_code = error.message, error.code
                gen.response_status, gen.response_body, _ = gen.surface.render_error(
                    error, gen.meta.request_id
                )
                gen.zero_charge_reason = "failed"
                await self.hooks.void(gen, "failed")
            else:
                assert completion is not None
                await self.hooks.settle(gen, client_gone)
                gen.meta.cost_usd = gen.cost_micros / 1_000_000
                gen.status = "canceled" if client_gone and gen.idempotency_key is None else "completed"
                if not gen.billed and gen.zero_charge_reason == "zero_completion" and not client_gone:
                    gen.status = "failed"
                    gen.error, gen.error_code = "The model produced no output.", "zero_completion"
                gen.response_status = 200
                gen.response_body = gen.surface.render(completion, gen.meta)
        except RunapiError as exc:  # the ledger itself failed: nothing charged, say so
            log.error("settlement failed for %s: %s", gen.task_id, exc)
            gen.status, gen.failure, gen.error, gen.error_code = "failed", exc, exc.message, exc.code
            gen.response_status, gen.response_body, _ = gen.surface.render_error(exc, gen.meta.request_id)
        finally:
            self._publish_tail(gen)
            await self.hooks.finished(gen)

    def _publish_tail(self, gen: Generation) -> None:
        """Render the stream's terminal frame once, after settlement (it carries the cost), and add
        it to the task's event log before `finished` closes that log: a replay ends as the live
        stream did."""
        encoder = gen.stream_encoder
        if encoder is None:
            return
        try:
            if gen.failure is not None:
                gen.tail = encoder.error(gen.failure)
            elif gen.completion is not None:
                gen.tail = encoder.finish(gen.completion)
            else:
                return
        except Exception:  # a codec bug must not keep the task from being recorded
            log.exception("rendering the end of the stream failed for %s", gen.task_id)
            return
        publish = self.hooks.event_publisher(gen)
        if publish is not None:
            if not gen.stream_started:
                if gen.failure is not None:
                    # Failed before the first event: the answer was its HTTP status, not a
                    # stream, so the log stays empty and a replay answers the same way.
                    return
                publish(gen.stream_start)  # no event rendered a frame: still a whole stream
            publish(gen.tail)

    # ------------------------------------------------------------------ helpers

    def _error(self, surface: Surface, error: RunapiError, headers: dict[str, str]) -> Reply:
        status, body, extra = surface.render_error(error, headers["x-request-id"])
        if error.kind is ErrorKind.INTERNAL:
            log.error("internal error on %s: %s", surface.endpoint, error.message)
        return Reply(status, {**headers, **extra}, body)


async def _drop_upstream(gen: Generation) -> None:
    """The upstream call started ahead of a task that will not run: drop it."""
    if gen.upstream is not None:
        await gen.upstream.abandon()
        gen.upstream = None


def _ms(seconds: float) -> str:
    return f"{max(seconds, 0.0) * 1000:.3f}"


def _fingerprint(request: Exchange, body: bytes) -> str:
    """sha256 over method, path and the canonical JSON body (sorted keys, compact)."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except msgspec.DecodeError:
        canonical = body
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b" ")
    digest.update(request.path.encode())
    digest.update(b"\n")
    digest.update(canonical)
    return digest.hexdigest()


__all__ = ["OVERHEAD_HEADER", "Pipeline"]
