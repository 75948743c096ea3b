"""The pipeline's hooks with the real limits, billing and metrics wired in.

Order per request (runapi-contract §6.2): rate limits (RPM, concurrency, ITPM estimate) → free
grant or hold → task → upstream; limits are checked first, so a refused request costs nothing.
An async task refused only for its key's concurrency is the exception: it is held and queued
(`pending`, up to 10 times the cap in all processes together), and admitted by the limits when a
slot frees.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import NamedTuple

from runapi.billing import Ledger
from runapi.billing.records import Admission, AdmissionTerms
from runapi.canonical.codec import RateLimitView
from runapi.errors import RunapiError
from runapi.limits.buckets import Dimension, SlotRef
from runapi.limits.limiter import Limiter, LimitExceeded, LimitState
from runapi.limits.tiers import LimitValues, TierTable
from runapi.limits.waiting import WAIT_FACTOR, SlotWaiters
from runapi.metrics import Metrics
from runapi.pipeline.context import Generation
from runapi.pipeline.hooks import PipelineHooks
from runapi.pipeline.task_hooks import TaskSteps
from runapi.settings import Settings
from runapi.tasks.history import ResponseHistory
from runapi.tasks.service import Tasks
from runapi.tasks.webhooks.ssrf import check_callback_url

log = logging.getLogger("runapi.pipeline")


def rate_limit_view(state: LimitState) -> RateLimitView:
    return RateLimitView(
        requests_limit=state.requests.limit,
        requests_remaining=state.requests.remaining,
        requests_reset_s=state.requests.reset_seconds,
        input_tokens_limit=state.input_tokens.limit,
        input_tokens_remaining=state.input_tokens.remaining,
        input_tokens_reset_s=state.input_tokens.reset_seconds,
        output_tokens_limit=state.output_tokens.limit,
        output_tokens_remaining=state.output_tokens.remaining,
        output_tokens_reset_s=state.output_tokens.reset_seconds,
    )


class SlotWait(NamedTuple):
    """An async task waiting for a concurrency slot: the limits it waits to be admitted under, and
    its place in the key's queue."""

    limits: LimitValues
    place: SlotRef


class GatewayHooks(TaskSteps, PipelineHooks):
    def __init__(
        self,
        *,
        settings: Settings,
        limiter: Limiter | None,
        tiers: TierTable,
        ledger: Ledger | None = None,
        tasks: Tasks | None = None,
        history: ResponseHistory | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.tiers = tiers
        self.ledger = ledger
        self.tasks = tasks
        self.history = history
        self.metrics = metrics
        self.slot_waiters = SlotWaiters()

    def validate_callback_url(self, url: str) -> None:
        check_callback_url(url, self.settings.webhooks)

    # ------------------------------------------------------------------ admission

    async def admit(self, gen: Generation) -> None:
        principal = gen.principal
        if self.limiter is not None:
            limits = self.tiers.limits_for(principal.tier, gen.model.model_class, principal.limit_overrides)
            try:
                await self._take_limits(gen, limits)
            except LimitExceeded as exc:
                gen.refusal_state = exc.state  # for the answer's headers: 429, or the queued 202
                if not await self._queue_for_a_slot(gen, exc, limits):
                    self._rejected(exc)
                    raise
        if self.ledger is not None:
            terms = AdmissionTerms(
                account_id=principal.account_id,
                account_created_at=principal.account_created_at,
                task_id=gen.task_id,
                model=gen.model,
                est_input_tokens=gen.est_input_tokens,
                max_output_tokens=gen.decoded.request.max_output_tokens,
            )
            # An async task waits for a runner slot anyway: nothing to overlap the hold with.
            ahead = self.ledger.admit_ahead(**terms) if gen.mode != "async" else None
            if ahead is not None:
                gen.pending_admission = ahead
                return
            await self._admission(gen, self.ledger.admit(**terms))

    async def _take_limits(self, gen: Generation, limits: LimitValues) -> None:
        assert self.limiter is not None
        principal = gen.principal
        gen.ticket = await self.limiter.admit(
            key_id=principal.key_id,
            account_id=principal.account_id,
            model_class=gen.model.model_class,
            limits=limits,
            est_input_tokens=gen.est_input_tokens,
        )

    async def _queue_for_a_slot(self, gen: Generation, refused: LimitExceeded, limits: LimitValues) -> bool:
        if gen.mode != "async" or refused.refusal.dimension is not Dimension.CONCURRENT:
            return False
        assert self.limiter is not None
        principal = gen.principal
        place = await self.limiter.join_queue(
            key_id=principal.key_id,
            account_id=principal.account_id,
            model_class=gen.model.model_class,
            bound=WAIT_FACTOR * refused.refusal.limit,
        )
        if place is None:
            return False
        gen.slot_wait = SlotWait(limits, place)
        self.slot_waiters.join(principal.key_id)
        return True

    async def wait_for_limits(self, gen: Generation) -> RunapiError | None:
        wait: SlotWait | None = gen.slot_wait
        if wait is None or self.limiter is None:
            return None
        limits = wait.limits
        # As long as the task itself may run: its deadline counts from its creation.
        deadline = gen.started_monotonic + self.settings.tasks.deadline_seconds
        try:
            while True:
                try:
                    await self._take_limits(gen, limits)
                    return None
                except LimitExceeded as exc:
                    if time.monotonic() >= deadline:
                        return exc
                    await self.slot_waiters.pause(gen.principal.key_id, exc.refusal.retry_after)
                except RunapiError as exc:  # the limits' state is unavailable (503): try again
                    if time.monotonic() >= deadline:
                        return exc
                    await asyncio.sleep(self.slot_waiters.poll_seconds)
        finally:
            await self._leave_queue(gen)

    async def _leave_queue(self, gen: Generation) -> None:
        wait: SlotWait | None = gen.slot_wait
        if wait is not None:
            gen.slot_wait = None
            self.slot_waiters.leave(gen.principal.key_id)
            if self.limiter is not None:
                await self.limiter.leave_queue(wait.place)

    async def confirm_admission(self, gen: Generation) -> None:
        pending, gen.pending_admission = gen.pending_admission, None
        if pending is None:
            return
        try:
            await self._admission(gen, pending)
        except BaseException:  # refused, or the caller left: the pipeline drops the started call
            if self.metrics is not None:
                self.metrics.upstream_abandoned.inc()
            raise

    async def _admission(self, gen: Generation, answer: Awaitable[Admission]) -> None:
        """Await the ledger's answer. A refusal gives the limits back; so does a caller who
        leaves while the hold is being written (a disconnect cancels the handler), whose hold the
        ledger voids as soon as it lands: neither may stay taken by a request that is gone."""
        try:
            gen.admission = await answer
        except BaseException as exc:  # a refusal, a ledger failure, or the caller gone
            await self._release_limits(gen)
            if isinstance(exc, RunapiError):
                self._rejected(exc)
            raise

    async def give_back(self, gen: Generation) -> None:
        await self._release_limits(gen)
        if self.ledger is not None and isinstance(gen.admission, Admission):
            await self.ledger.void(gen.admission, "canceled_before_start")
        await self.release_idempotency(gen)

    def rate_limit_headers(self, gen: Generation) -> dict[str, str]:
        state: LimitState | None = None
        if gen.ticket is not None and self.limiter is not None:
            state = self.limiter.view(gen.ticket)
        elif gen.refusal_state is not None:
            state = gen.refusal_state
        if state is None:
            return {}
        return gen.surface.rate_limit_headers(rate_limit_view(state))

    async def debit_output(self, gen: Generation, tokens: int) -> None:
        if self.limiter is not None and gen.ticket is not None:
            await self.limiter.add_output(gen.ticket, tokens)

    # ------------------------------------------------------------------ settlement

    async def settle(self, gen: Generation, client_gone: bool) -> None:
        usage = gen.usage
        assert usage is not None
        if self.ledger is None or not isinstance(gen.admission, Admission):
            gen.billed, gen.cost_micros = False, 0
            return
        settling = self.ledger.settle(gen.admission, usage, gen.model)
        if self.limiter is not None and self.limiter.backend.needs_lease_refresh:
            # Shared limits are a Redis round trip: release them while the ledger writes, not
            # after (both are done before the answer leaves; `finished` finds them released).
            charge, _ = await asyncio.gather(settling, self._release_limits(gen))
        else:
            charge = await settling
        gen.cost_micros = charge.cost_micros
        gen.billed = charge.billed
        gen.free_call = charge.free_call
        gen.zero_charge_reason = charge.zero_charge_reason
        gen.price_schedule_id = charge.price_schedule_id

    async def void(self, gen: Generation, reason: str) -> None:
        gen.zero_charge_reason = reason
        gen.cost_micros, gen.billed = 0, False
        if self.ledger is not None and isinstance(gen.admission, Admission):
            charge = await self.ledger.void(gen.admission, reason)
            gen.price_schedule_id = charge.price_schedule_id

    async def finished(self, gen: Generation) -> None:
        await self._release_limits(gen)
        await self.record_finished(gen)
        if self.metrics is not None:
            usage = gen.usage
            self.metrics.finished(
                gen.surface.endpoint,
                gen.model.id,
                gen.status,
                time.monotonic() - gen.started_monotonic,
                usage.input_tokens if usage else 0,
                usage.output_tokens if usage else 0,
                gen.cost_micros,
            )

    # ------------------------------------------------------------------ helpers

    async def _release_limits(self, gen: Generation) -> None:
        # A place in the queue for a slot goes too: the task ended (or was refused, or never
        # submitted) before its wait did.
        if gen.slot_wait is not None:
            await self._leave_queue(gen)
        if self.limiter is None or gen.ticket is None:
            return
        usage = gen.usage
        await self.limiter.release(
            gen.ticket,
            # ITPM counts uncached input and cache writes; cache reads are exempt (§6.2).
            input_tokens=(usage.uncached_input_tokens + usage.cache_write_tokens) if usage else None,
            output_tokens=usage.output_tokens if usage else None,
        )
        self.slot_waiters.released(gen.principal.key_id)

    def _rejected(self, error: RunapiError) -> None:
        if self.metrics is not None:
            self.metrics.rejected(error.status)
