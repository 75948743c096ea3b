"""Bucket state in this process: right for one worker only (an explicit opt-in, field-lessons §4).

With several gateway processes each would hold its own buckets and a limit would multiply by the
number of processes; `build_limiter` therefore refuses it when `workers > 1`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runapi.limits.buckets import (
    WINDOW_SECONDS,
    Adjustment,
    AdmitOutcome,
    AdmitRequest,
    Scope,
    SlotRef,
    Used,
    scope_refusals,
    seconds_until_full,
    worst,
)
from runapi.limits.tiers import LimitValues

# Drained, idle buckets are forgotten (a missing bucket reads as nothing used) every this many
# admissions, so memory follows the active keys, not every key ever seen.
_PRUNE_EVERY = 4096


@dataclass(slots=True)
class _ScopeState:
    requests: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    at: float = 0.0
    slots: set[str] = field(default_factory=set)
    # The limits last applied, so pruning can tell when the buckets have drained.
    limits: LimitValues | None = None

    def bring_to(self, now: float, limits: LimitValues) -> None:
        elapsed = now - self.at
        if elapsed > 0:  # (the amounts are never negative: without time passing nothing changes)
            # `drain` written out: four times a request, three buckets each.
            if (cap := limits.rpm) > 0:
                self.requests = max(0.0, self.requests - elapsed * cap / WINDOW_SECONDS)
            if (cap := limits.itpm) > 0:
                self.input_tokens = max(0.0, self.input_tokens - elapsed * cap / WINDOW_SECONDS)
            if (cap := limits.otpm) > 0:
                self.output_tokens = max(0.0, self.output_tokens - elapsed * cap / WINDOW_SECONDS)
            self.at = now
        self.limits = limits

    def used(self) -> Used:
        return Used(self.requests, self.input_tokens, self.output_tokens)


class InProcessLimiterBackend:
    """Token buckets in a dict. Each call runs without an await, so it is atomic on the event loop."""

    needs_lease_refresh = False
    lease_seconds = 0.0
    output_flush_seconds = 0.0

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._scopes: dict[tuple[Scope, str | int, str], _ScopeState] = {}
        self._admissions = 0
        self._queues: dict[tuple[str, str], set[str]] = {}  # (key, model class) → waiting places

    def _state(self, scope: Scope, owner: str | int, model_class: str, limits: LimitValues) -> _ScopeState:
        ident = (scope, owner, model_class)
        now = self._clock()
        state = self._scopes.get(ident)
        if state is None:
            state = self._scopes[ident] = _ScopeState(at=now)
        state.bring_to(now, limits)
        return state

    async def admit(self, request: AdmitRequest) -> AdmitOutcome:
        slot, est = request.slot, request.est_input_tokens
        key = self._state(Scope.KEY, slot.key_id, slot.model_class, request.key_limits)
        account = self._state(Scope.ACCOUNT, slot.account_id, slot.model_class, request.account_limits)
        refusal = worst(
            scope_refusals(Scope.KEY, key.used(), len(key.slots), request.key_limits, est)
            + scope_refusals(Scope.ACCOUNT, account.used(), len(account.slots), request.account_limits, est)
        )
        if refusal is None:
            for state in (key, account):
                state.requests += 1
                state.input_tokens += est
                state.slots.add(slot.slot_id)
            self._admissions += 1
            if self._admissions % _PRUNE_EVERY == 0:
                self._prune()
        return AdmitOutcome(refusal=refusal, key=key.used(), account=account.used())

    async def adjust(self, adjustment: Adjustment) -> tuple[Used, Used]:
        slot = adjustment.slot
        key = self._state(Scope.KEY, slot.key_id, slot.model_class, adjustment.key_limits)
        account = self._state(Scope.ACCOUNT, slot.account_id, slot.model_class, adjustment.account_limits)
        for state in (key, account):
            # A refund (negative delta) never takes a bucket below nothing used.
            state.input_tokens = max(0.0, state.input_tokens + adjustment.input_delta)
            state.output_tokens = max(0.0, state.output_tokens + adjustment.output_tokens)
            if adjustment.release:
                state.slots.discard(slot.slot_id)
        return key.used(), account.used()

    async def refresh_leases(self, slots: Sequence[SlotRef]) -> None:
        return None  # slots live and die with this process: nothing to lease

    async def join_queue(self, place: SlotRef, bound: int) -> bool:
        queue = self._queues.setdefault((place.key_id, place.model_class), set())
        if place.slot_id not in queue and len(queue) >= bound:
            if not queue:
                del self._queues[(place.key_id, place.model_class)]
            return False
        queue.add(place.slot_id)
        return True

    async def leave_queue(self, place: SlotRef) -> None:
        ident = (place.key_id, place.model_class)
        queue = self._queues.get(ident)
        if queue is not None:
            queue.discard(place.slot_id)
            if not queue:
                del self._queues[ident]

    async def refresh_queue_leases(self, places: Sequence[SlotRef]) -> None:
        return None

    def __len__(self) -> int:
        """How many (scope, owner, model class) records are held."""
        return len(self._scopes)

    async def aclose(self) -> None:
        self._scopes.clear()
        self._queues.clear()

    def _prune(self) -> None:
        now = self._clock()
        for ident, state in list(self._scopes.items()):
            limits = state.limits
            if state.slots or limits is None:
                continue
            drained_after = max(
                seconds_until_full(state.requests, limits.rpm),
                seconds_until_full(state.input_tokens, limits.itpm),
                seconds_until_full(state.output_tokens, limits.otpm),
            )
            if now - state.at >= drained_after:
                del self._scopes[ident]
