"""The Limiter the pipeline calls: admit → add_output while streaming → release (runapi-contract §6.2).

    ticket = await limiter.admit(key_id=..., account_id=..., model_class=..., limits=...,
                                 est_input_tokens=...)
    headers = render(limiter.view(ticket))
    await limiter.add_output(ticket, n)            # as output tokens stream; never refuses
    await limiter.release(ticket, input_tokens=..., output_tokens=...)   # in `finally`; idempotent

An async task refused for concurrency may wait for a slot instead: `join_queue` takes one of the
key's bounded places (shared by every process on Redis), `leave_queue` gives it back.

Admission checks the key's and the account's buckets together and debits nothing when it refuses.
When the shared state cannot be reached, `failure_mode` decides: "closed" answers 503
(`Overloaded`), "open" admits unchecked and logs a (throttled) warning. Neither hangs: every
backend call is bounded by the backend's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import msgspec

from runapi.errors import Overloaded, RateLimited
from runapi.ids import new_ulid
from runapi.limits.buckets import (
    Adjustment,
    AdmitRequest,
    BackendUnavailable,
    Dimension,
    LimiterBackend,
    Refusal,
    Scope,
    SlotRef,
    Used,
    seconds_until_full,
)
from runapi.limits.memory import InProcessLimiterBackend
from runapi.limits.redis_backend import RedisLimiterBackend
from runapi.limits.tiers import LimitValues
from runapi.settings import Settings

log = logging.getLogger(__name__)

FailureMode = Literal["closed", "open"]
_UNAVAILABLE_RETRY_SECONDS = 1.0


class BucketState(msgspec.Struct, frozen=True):
    """One bucket as rate-limit headers show it."""

    limit: int
    remaining: int
    # Seconds until the bucket is full again.
    reset_seconds: float


class LimitState(msgspec.Struct, frozen=True, kw_only=True):
    """What the headers report: for each bucket, the more restrictive of the key's and the
    account's."""

    requests: BucketState
    input_tokens: BucketState
    output_tokens: BucketState

    @property
    def tokens(self) -> BucketState:
        """The more restrictive of input and output tokens (OpenAI's `-tokens` headers)."""
        return min(self.input_tokens, self.output_tokens, key=_fullness)


class LimitExceeded(RateLimited):
    """A refusal by our own limits, carrying the state for the 429's rate-limit headers."""

    def __init__(self, message: str, *, refusal: Refusal, state: LimitState) -> None:
        super().__init__(message, limit_type=refusal.dimension.limit_type, retry_after=refusal.retry_after)
        self.refusal = refusal
        self.state = state


@dataclass(slots=True, eq=False)
class LimitTicket:
    """One admitted request. Only the Limiter changes it."""

    slot: SlotRef
    limits: LimitValues
    est_input_tokens: int
    # The headers' view, built from `used` (what the key and the account had used at the last
    # exchange with the backend) when first asked for: the headers view it once, at admission,
    # and a release need not build it again.
    state: LimitState | None = None
    used: tuple[Used, Used] | None = None
    # False when admitted without a check (limits disabled, or shared state down in "open" mode).
    checked: bool = True
    output_reported: int = 0
    output_debited: int = 0
    last_flush: float = 0.0
    released: bool = False


class Limiter:
    def __init__(
        self,
        backend: LimiterBackend,
        *,
        failure_mode: FailureMode = "closed",
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.failure_mode = failure_mode
        self.enabled = enabled
        self._clock = clock
        self._live: set[LimitTicket] = set()
        self._queued: set[SlotRef] = set()  # places in a queue for a slot, leased like slots
        # Slot ids only need to be unique among live slots (across processes, for Redis): a
        # ULID per limiter, then a counter.
        self._slot_prefix = new_ulid()
        self._slot_numbers = itertools.count()
        self._lease_keeper: asyncio.Task[None] | None = None
        self._warn = _ThrottledWarning(interval=10.0)

    async def admit(
        self,
        *,
        key_id: str,
        account_id: int,
        model_class: str,
        limits: LimitValues,
        est_input_tokens: int,
    ) -> LimitTicket:
        """Admit one request or raise `LimitExceeded` (a `RateLimited`) without debiting anything."""
        slot = self._new_ref(key_id, account_id, model_class)
        est = max(0, est_input_tokens)
        if not self.enabled:
            return _unchecked(slot, limits, est)
        request = AdmitRequest(
            slot=slot, est_input_tokens=est, key_limits=limits, account_limits=limits.account_values
        )
        try:
            outcome = await self.backend.admit(request)
        except BackendUnavailable as exc:
            if self.failure_mode == "open":
                self._warn.warning("rate limits not enforced (failure mode 'open'): %s", exc)
                return _unchecked(slot, limits, est)
            # Operators see why callers get 503s (throttled: one line per interval, not per call).
            self._warn.warning("rate-limit state unavailable, answering 503 (failure mode 'closed'): %s", exc)
            raise Overloaded(
                "Rate-limit state is unavailable right now; please retry shortly.",
                retry_after=_UNAVAILABLE_RETRY_SECONDS,
            ) from exc
        if outcome.refusal is not None:
            raise LimitExceeded(
                _refusal_message(outcome.refusal, model_class),
                refusal=outcome.refusal,
                state=_state(limits, outcome.key, outcome.account),
            )
        ticket = LimitTicket(
            slot=slot,
            limits=limits,
            est_input_tokens=est,
            used=(outcome.key, outcome.account),
            last_flush=self._clock(),
        )
        if self.backend.needs_lease_refresh:
            self._live.add(ticket)
            self._ensure_lease_keeper()
        return ticket

    async def add_output(self, ticket: LimitTicket, tokens: int) -> None:
        """Debit streamed output tokens. Never refuses: the bucket may go into debt, which drains."""
        if tokens <= 0 or ticket.released or not ticket.checked:
            return
        ticket.output_reported += tokens
        if self._clock() - ticket.last_flush >= self.backend.output_flush_seconds:
            await self._flush_output(ticket)

    async def release(
        self, ticket: LimitTicket, *, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        """Free the concurrency slot and settle the token debits with the actual usage.

        `input_tokens` is what ITPM counts (uncached input + cache writes); None keeps the
        estimate. `output_tokens` None keeps what `add_output` reported. Idempotent; never raises
        for an unavailable backend (a lost release expires with the slot's lease)."""
        if ticket.released:
            return
        ticket.released = True
        self._live.discard(ticket)
        if not ticket.checked:
            return
        if output_tokens is not None:
            ticket.output_reported = max(0, output_tokens)
        adjustment = Adjustment(
            slot=ticket.slot,
            key_limits=ticket.limits,
            account_limits=ticket.limits.account_values,
            input_delta=0 if input_tokens is None else max(0, input_tokens) - ticket.est_input_tokens,
            output_tokens=ticket.output_reported - ticket.output_debited,
            release=True,
        )
        ticket.output_debited = ticket.output_reported
        try:
            used = await self.backend.adjust(adjustment)
        except BackendUnavailable as exc:
            self._warn.warning("could not release a rate-limit slot (it will expire): %s", exc)
            return
        _remember(ticket, used)

    async def join_queue(
        self, *, key_id: str, account_id: int, model_class: str, bound: int
    ) -> SlotRef | None:
        """A place among the tasks of the key and model class waiting for a concurrency slot, or
        None when `bound` of them wait already (in every process, on a shared backend), or when
        the queue cannot be reached: the caller's refusal then stands."""
        if bound <= 0 or not self.enabled:
            return None
        place = self._new_ref(key_id, account_id, model_class)
        try:
            joined = await self.backend.join_queue(place, bound)
        except BackendUnavailable as exc:
            self._warn.warning("could not queue a task for a concurrency slot: %s", exc)
            return None
        if not joined:
            return None
        if self.backend.needs_lease_refresh:
            self._queued.add(place)
            self._ensure_lease_keeper()
        return place

    async def leave_queue(self, place: SlotRef) -> None:
        """Give the place back. Never raises for an unavailable backend (the place's lease ends)."""
        self._queued.discard(place)
        try:
            await self.backend.leave_queue(place)
        except BackendUnavailable as exc:
            self._warn.warning("could not leave the queue for a slot (the place will expire): %s", exc)

    def view(self, ticket: LimitTicket) -> LimitState:
        """The rate-limit state as of the ticket's last exchange with the backend (no I/O)."""
        if ticket.state is None:
            assert ticket.used is not None  # a checked ticket: every exchange leaves its `used`
            ticket.state = _state(ticket.limits, *ticket.used)
        return ticket.state

    async def aclose(self) -> None:
        if self._lease_keeper is not None:
            self._lease_keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_keeper
            self._lease_keeper = None
        await self.backend.aclose()

    # -- internals

    def _new_ref(self, key_id: str, account_id: int, model_class: str) -> SlotRef:
        slot_id = f"{self._slot_prefix}.{next(self._slot_numbers):x}"
        return SlotRef(key_id=key_id, account_id=account_id, model_class=model_class, slot_id=slot_id)

    async def _flush_output(self, ticket: LimitTicket) -> None:
        pending = ticket.output_reported - ticket.output_debited
        if pending <= 0:
            return
        # Count it as debited before awaiting, so a concurrent release does not debit it twice.
        ticket.output_debited += pending
        ticket.last_flush = self._clock()
        adjustment = Adjustment(
            slot=ticket.slot,
            key_limits=ticket.limits,
            account_limits=ticket.limits.account_values,
            output_tokens=pending,
        )
        try:
            used = await self.backend.adjust(adjustment)
        except BackendUnavailable as exc:
            ticket.output_debited -= pending  # retried by the next flush or the release
            self._warn.warning("could not debit output tokens: %s", exc)
            return
        _remember(ticket, used)

    def _ensure_lease_keeper(self) -> None:
        if self._lease_keeper is None or self._lease_keeper.done():
            self._lease_keeper = asyncio.get_running_loop().create_task(
                self._keep_leases(), name="runapi-limit-leases"
            )

    async def _keep_leases(self) -> None:
        """Refresh the concurrency leases of this process's in-flight requests (and the places of
        its tasks waiting for one), so a long stream keeps its slot while a dead process's slots
        expire. Ends when nothing is in flight or waiting."""
        interval = max(0.05, self.backend.lease_seconds / 3)
        while self._live or self._queued:
            await asyncio.sleep(interval)
            slots = [t.slot for t in self._live]
            places = list(self._queued)
            try:
                if slots:
                    await self.backend.refresh_leases(slots)
                if places:
                    await self.backend.refresh_queue_leases(places)
            except BackendUnavailable as exc:
                self._warn.warning("could not refresh rate-limit leases: %s", exc)


def build_limiter(settings: Settings) -> Limiter:
    """The limiter the settings ask for: Redis when `redis_url` is set, else this process's memory.

    In-process state is right for one worker only; with several it would multiply every limit by
    the number of workers (field-lessons §4), so that combination is refused at startup."""
    lim = settings.limits
    backend: LimiterBackend
    if settings.redis_url:
        backend = RedisLimiterBackend.from_url(
            settings.redis_url, timeout=lim.redis_timeout, prefix=lim.redis_prefix
        )
    elif lim.enabled and settings.workers > 1:
        raise ValueError(
            f"{settings.workers} workers need shared rate-limit state: set RUNAPI_REDIS_URL "
            "(or RUNAPI_LIMITS_ENABLED=false)."
        )
    else:
        backend = InProcessLimiterBackend()
    return Limiter(backend, failure_mode=lim.redis_failure_mode, enabled=lim.enabled)


def _unchecked(slot: SlotRef, limits: LimitValues, est: int) -> LimitTicket:
    full = LimitState(
        requests=BucketState(limits.rpm, limits.rpm, 0.0),
        input_tokens=BucketState(limits.itpm, limits.itpm, 0.0),
        output_tokens=BucketState(limits.otpm, limits.otpm, 0.0),
    )
    return LimitTicket(slot=slot, limits=limits, est_input_tokens=est, state=full, checked=False)


def _remember(ticket: LimitTicket, used: tuple[Used, Used]) -> None:
    ticket.used, ticket.state = used, None


def _bucket(limit: int, used: float) -> BucketState:
    return BucketState(limit, max(0, math.floor(limit - used)), seconds_until_full(used, limit))


def _tighter(key: BucketState, account: BucketState) -> BucketState:
    return account if account.remaining < key.remaining else key


def _state(limits: LimitValues, key: Used, account: Used) -> LimitState:
    acct = limits.account_values
    return LimitState(
        requests=_tighter(_bucket(limits.rpm, key.requests), _bucket(acct.rpm, account.requests)),
        input_tokens=_tighter(
            _bucket(limits.itpm, key.input_tokens), _bucket(acct.itpm, account.input_tokens)
        ),
        output_tokens=_tighter(
            _bucket(limits.otpm, key.output_tokens), _bucket(acct.otpm, account.output_tokens)
        ),
    )


def _fullness(bucket: BucketState) -> float:
    return bucket.remaining / bucket.limit if bucket.limit > 0 else 0.0


_DIMENSION_TEXT = {
    Dimension.REQUESTS: "requests per minute",
    Dimension.INPUT_TOKENS: "input tokens per minute",
    Dimension.OUTPUT_TOKENS: "output tokens per minute",
    Dimension.CONCURRENT: "concurrent requests",
}


def _refusal_message(refusal: Refusal, model_class: str) -> str:
    owner = "this API key" if refusal.scope is Scope.KEY else "this account (all its keys together)"
    what = _DIMENSION_TEXT[refusal.dimension]
    if refusal.limit <= 0:
        return f"The limit of {what} for {model_class} models on {owner} is 0."
    return (
        f"Rate limit reached for {what} on {owner} ({model_class} models): limit {refusal.limit}. "
        f"Please try again in {_duration(refusal.retry_after)}."
    )


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    return f"{seconds:.1f}s"


class _ThrottledWarning:
    """At most one warning per interval, so an outage does not flood the log."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next_at = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next_at:
            self._suppressed += 1
            return
        if self._suppressed:
            message += " (%d similar warnings suppressed)"
            args = (*args, self._suppressed)
        log.warning(message, *args)
        self._next_at = now + self._interval
        self._suppressed = 0
