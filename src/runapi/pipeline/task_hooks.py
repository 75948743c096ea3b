"""The task steps of the pipeline: records, idempotency, async mode, events, stored history.

Every admitted generation becomes a task (runapi-contract §3.1). Sync and stream records are
written behind (batched, never dropped); async records are written durably before the 202.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec

from runapi.auth import Principal
from runapi.canonical import Message
from runapi.canonical.codec import Decoded
from runapi.errors import InvalidRequest, NotFound
from runapi.pipeline.context import Generation
from runapi.pipeline.hooks import Publisher, Runner
from runapi.server.exchange import SSE_CONTENT_TYPE, SSE_HEADERS, STREAMED, Answer, Exchange, Reply
from runapi.settings import Settings
from runapi.tasks.history import ResponseHistory
from runapi.tasks.service import ResponseEnvelope, TaskOutcome, TaskRecord, Tasks

_encoder = msgspec.json.Encoder()


class TaskSteps:
    """Mixed into `GatewayHooks`; all methods are no-ops when `tasks` is None."""

    tasks: Tasks | None
    history: ResponseHistory | None
    settings: Settings

    # ------------------------------------------------------------------ history (Responses)

    async def with_history(self, decoded: Decoded, principal: Principal) -> Decoded:
        previous = decoded.gateway.previous_response_id
        assert previous is not None
        if self.tasks is None or self.history is None:
            raise InvalidRequest("This gateway keeps no stored responses.", param="previous_response_id")
        record = await self.tasks.store.find(previous)
        if record is None or record.account_id != principal.account_id:
            raise NotFound(f"No response '{previous}'.", param="previous_response_id")
        earlier = await self.history.load(record.id)
        if earlier is None:
            raise InvalidRequest(
                f"Response '{previous}' was created without `store: true`, so its input was not kept. "
                "Send `store: true` to chain responses, or resend the history.",
                param="previous_response_id",
            )
        request = decoded.request.with_changes(messages=tuple(earlier) + decoded.request.messages)
        return msgspec.structs.replace(decoded, request=request)

    # ------------------------------------------------------------------ idempotency

    async def claim_idempotency(self, gen: Generation) -> str | None:
        if self.tasks is None or gen.idempotency_key is None or gen.fingerprint is None:
            return None
        claim = await self.tasks.idempotency.claim(
            gen.principal.key_id, gen.idempotency_key, gen.fingerprint, gen.task_id
        )
        return None if claim.owner else claim.task_id

    async def release_idempotency(self, gen: Generation) -> None:
        """Admission refused the request: no task exists, so the key may be used again."""
        if self.tasks is not None and gen.idempotency_key is not None:
            await self.tasks.idempotency.release(gen.principal.key_id, gen.idempotency_key, gen.task_id)

    async def replay(
        self, request: Exchange, gen: Generation, existing: str, headers: dict[str, str]
    ) -> Answer:
        """Same key, same body: the same task, never a second generation (§2)."""
        assert self.tasks is not None
        store = self.tasks.store
        headers.update({"X-RunAPI-Task-Id": existing, "X-RunAPI-Idempotent-Replay": "true"})
        streamed = True
        if gen.mode == "stream" and self.tasks.events.state(existing) != "unknown":
            answer = await self._stream_log(request, existing, headers)
            if answer is not None:
                return answer
            streamed = False  # the live call failed before its first event: its HTTP status, again
        wait = gen.prefer_wait if gen.mode == "async" else self.settings.tasks.deadline_seconds
        record = await store.wait_terminal(existing, wait or 0.0)
        if record is None:
            record = await store.get(existing, gen.principal.account_id)
        if not record.is_terminal or record.response is None:
            return self._accepted(record, headers, replay=True)
        if gen.mode == "stream" and streamed:
            frames = b"".join(self.tasks.replay_frames(record))
            return Reply(200, {**headers, **SSE_HEADERS}, frames, SSE_CONTENT_TYPE)
        return self._stored_response(record, headers)

    # ------------------------------------------------------------------ records

    async def task_created(self, gen: Generation) -> None:
        if self.tasks is None:
            return
        options = gen.decoded.gateway
        record = TaskRecord.new(
            account_id=gen.principal.account_id,
            api_key_id=gen.principal.key_id,
            model=gen.model.id,
            endpoint=gen.surface.endpoint,  # type: ignore[arg-type]
            surface_prefix=gen.surface.id_prefix,
            settings=self.settings.tasks,
            mode=gen.mode,  # type: ignore[arg-type]
            streamed=gen.decoded.request.stream,
            client_request_id=gen.client_request_id,
            callback_url=options.callback_url,
            webhook_events_filter=options.webhook_events_filter,
            ulid=gen.ulid,
        )
        record.idempotency_key = gen.idempotency_key
        record.request_fingerprint = gen.fingerprint
        gen.record = record
        # A sync task's id reaches its client only with the answer, so its first write may wait
        # (see TaskStore); not with an idempotency key, whose replays may ask any process for it.
        deferred = gen.mode == "sync" and gen.idempotency_key is None
        await self.tasks.store.create(record, durable=gen.mode == "async", deferred=deferred)
        if gen.mode != "sync":
            self.tasks.events.open(gen.task_id)
        if gen.mode != "async":
            await self.tasks.store.mark_processing(gen.task_id)

    def event_publisher(self, gen: Generation) -> Publisher | None:
        if self.tasks is None or gen.mode == "sync":
            return None
        events, task_id = self.tasks.events, gen.task_id

        def publish(frame: bytes) -> None:
            events.append(task_id, frame)

        return publish

    @contextmanager
    def tracking(self, gen: Generation) -> Iterator[None]:
        if self.tasks is None:
            yield
            return
        with self.tasks.runner.track(gen.task_id):
            yield

    async def record_finished(self, gen: Generation) -> None:
        if self.tasks is None:
            return
        completion = gen.completion
        outcome = TaskOutcome(
            status=gen.status,  # type: ignore[arg-type]
            finish_reason=completion.finish_reason if completion else None,
            usage=gen.usage,
            cost_micros=gen.cost_micros,
            billed=gen.billed,
            free_call=gen.free_call,
            zero_charge_reason=gen.zero_charge_reason,
            price_schedule_id=gen.price_schedule_id,
            error=gen.error,
            error_code=gen.error_code,
            upstream_id=completion.upstream_id if completion else None,
            response=ResponseEnvelope(
                status=gen.response_status,
                body=gen.response_body or b"",
                headers={"x-request-id": gen.meta.request_id, "X-RunAPI-Task-Id": gen.task_id},
            )
            if gen.response_body is not None
            else None,
        )
        try:
            await self.tasks.store.finish(gen.task_id, outcome)
        finally:
            if gen.mode != "sync":
                self.tasks.events.finish(gen.task_id)
        if gen.decoded.gateway.store_input and self.history is not None and gen.status == "completed":
            assert completion is not None
            turns = list(gen.decoded.request.messages)
            turns.append(Message(role="assistant", parts=tuple(completion.parts)))
            await self.history.save(gen.task_id, turns)

    # ------------------------------------------------------------------ async mode

    async def submit_async(
        self, request: Exchange, gen: Generation, headers: dict[str, str], run: Runner
    ) -> Answer:
        assert self.tasks is not None
        assert gen.record is not None
        tasks = self.tasks

        async def work() -> None:
            started = False
            try:
                # Over the key's concurrency cap: `pending` until the limits admit it.
                gen.refused_while_pending = await self.wait_for_limits(gen)  # type: ignore[attr-defined]
                async with tasks.runner.slot():
                    if gen.refused_while_pending is None:
                        await tasks.store.mark_processing(gen.task_id)
                    started = True
                    await run(gen)
            except asyncio.CancelledError:
                if not started and not gen.settled:
                    # Canceled while queued: nothing ran, nothing is charged (§8.5).
                    gen.settled = True
                    gen.status = "canceled"
                    await self.void(gen, "canceled_before_start")  # type: ignore[attr-defined]
                    await self.finished(gen)  # type: ignore[attr-defined]
                raise

        tasks.runner.submit(gen.task_id, work())
        if gen.prefer_wait:
            record = await tasks.store.wait_terminal(gen.task_id, gen.prefer_wait)
            if record is not None and record.response is not None:
                return self._stored_response(record, headers)
        if gen.decoded.gateway.background:
            # OpenAI's background mode: 200 with a queued Response object, polled by id.
            render_state = getattr(gen.surface, "render_state", None)
            if render_state is not None:
                headers["Location"] = f"/v1/tasks/{gen.task_id}"
                body = render_state(gen.meta, "pending", decoded=gen.decoded)
                return Reply(200, headers, body)
        return self._accepted(gen.record, headers)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _accepted(record: TaskRecord, headers: dict[str, str], replay: bool = False) -> Reply:
        headers = {**headers, "Location": f"/v1/tasks/{record.id}", "Retry-After": "2"}
        body = _encoder.encode(record.to_api(idempotent_replay=replay))
        return Reply(202, headers, body)

    @staticmethod
    def _stored_response(record: TaskRecord, headers: dict[str, str]) -> Reply:
        assert record.response is not None
        stored = record.response
        return Reply(stored.status, headers, stored.body, stored.content_type)

    async def _stream_log(self, request: Exchange, task_id: str, headers: dict[str, str]) -> Answer | None:
        """Follow the live task's event log as a stream, as the live call answered; None when the
        log ended empty (the live call failed before its first event and answered with a status).
        Like the live call, the stream opens with the first frame or the first keepalive."""
        assert self.tasks is not None
        try:
            async for seq, frame in self.tasks.events.follow(task_id, 0, keepalive_seconds=10.0):
                if not request.stream_started:
                    await request.start_stream(200, {**headers, **SSE_HEADERS})
                await request.write(frame if seq else b": keep-alive\n\n")
            if not request.stream_started:
                return None
            await request.end_stream()
        except ConnectionError:
            pass
        return STREAMED
