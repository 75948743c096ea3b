"""Continuously refilled token buckets: the rules and types every limiter backend shares.

Each (key, model class) and each (account, model class) owns three buckets that refill linearly
at their per-minute limit (runapi-contract §6.2), so 60 RPM behaves like one request a second,
never 60 at the top of a minute, plus a count of requests in flight:

- requests: one token per admitted request;
- input tokens: the estimate is debited at admission and corrected when usage is known; an
  estimate larger than the whole bucket is admitted only when the bucket is full, so a big prompt
  is possible but the long-run rate still holds (the bucket goes into debt and refills);
- output tokens: debited as they stream and never refused mid-stream (the bucket may go into
  debt); admission only needs the bucket not to be exhausted;
- concurrency: requests in flight, released when the request ends.

State is what each bucket has *used*, draining at the limit's rate (remaining = limit - used).
Keeping `used` rather than `remaining` means a changed limit applies at once: a promoted account's
next request sees the higher ceiling, a lowered key override bites immediately, and a missing
record means "nothing used" whatever the limit is.

A request is admitted only if every check of both scopes passes, and a refusal debits nothing.
The Redis backend runs the same rules inside one Lua script (`redis_script.py`); keep them equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

import msgspec

from runapi.limits.tiers import LimitValues

WINDOW_SECONDS = 60.0
# A slot frees when some other request ends, which no bucket can predict; ask for a short wait.
CONCURRENCY_RETRY_SECONDS = 1.0
# A limit of 0 never refills; a retry within the minute would be refused again.
BLOCKED_RETRY_SECONDS = 60.0


class Scope(StrEnum):
    KEY = "key"
    ACCOUNT = "account"


class Dimension(StrEnum):
    REQUESTS = "requests"
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    CONCURRENT = "concurrent"

    @property
    def limit_type(self) -> str:
        """OpenAI's 429 `type`: `tokens` for the token buckets, `requests` otherwise."""
        if self in (Dimension.INPUT_TOKENS, Dimension.OUTPUT_TOKENS):
            return "tokens"
        return "requests"


class Used(msgspec.Struct, frozen=True):
    """What one scope's buckets have used; above the limit is debt that drains like the rest."""

    requests: float
    input_tokens: float
    output_tokens: float


class SlotRef(msgspec.Struct, frozen=True, kw_only=True):
    """One admitted request's identity in the backend: its buckets and its concurrency slot."""

    key_id: str
    account_id: int
    model_class: str
    slot_id: str


class AdmitRequest(msgspec.Struct, frozen=True, kw_only=True):
    slot: SlotRef
    est_input_tokens: int
    key_limits: LimitValues
    account_limits: LimitValues


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    scope: Scope
    dimension: Dimension
    limit: int
    retry_after: float


class AdmitOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """`refusal` is None when admitted. `key` and `account` are after the debit (or unchanged)."""

    refusal: Refusal | None
    key: Used
    account: Used


class Adjustment(msgspec.Struct, frozen=True, kw_only=True):
    """A later change to an admitted request: token corrections and, at the end, its slot."""

    slot: SlotRef
    key_limits: LimitValues
    account_limits: LimitValues
    # Added to the input-token debit: actual - estimate (negative refunds, down to nothing used).
    input_delta: int = 0
    # Output tokens to debit now (negative when usage reports fewer than were streamed).
    output_tokens: int = 0
    release: bool = False


class BackendUnavailable(Exception):
    """The shared limiter state could not be reached in time (the Limiter applies the failure mode)."""


class LimiterBackend(Protocol):
    """Where bucket state lives. Every method is one atomic check-and-update per call."""

    # True when concurrency slots are leases that expire unless refreshed (shared backends).
    needs_lease_refresh: bool
    lease_seconds: float
    # Output debits are coalesced up to this many seconds when a debit costs a network round trip.
    output_flush_seconds: float

    async def admit(self, request: AdmitRequest) -> AdmitOutcome: ...

    async def adjust(self, adjustment: Adjustment) -> tuple[Used, Used]:
        """Apply the adjustment; return what the key and the account have used after it."""
        ...

    async def refresh_leases(self, slots: Sequence[SlotRef]) -> None: ...

    async def join_queue(self, place: SlotRef, bound: int) -> bool:
        """Take a place (`place.slot_id`) in the queue of the key and model class for a concurrency
        slot, unless `bound` places are taken already (runapi-contract §6.2: 10 times the cap)."""
        ...

    async def leave_queue(self, place: SlotRef) -> None: ...

    async def refresh_queue_leases(self, places: Sequence[SlotRef]) -> None:
        """Keep the places of this process's waiting tasks (a dead process's expire)."""
        ...

    async def aclose(self) -> None: ...


def drain(used: float, cap: int, elapsed: float) -> float:
    """What is still used after `elapsed` seconds of draining at `cap` per minute (never below 0)."""
    if elapsed > 0 and cap > 0:
        used -= elapsed * cap / WINDOW_SECONDS
    return max(0.0, used)


def seconds_until(used: float, need: float, cap: int) -> float:
    """Seconds until `need` more fits under the limit (0 when it does now)."""
    excess = used + need - cap
    if excess <= 0:
        return 0.0
    if cap <= 0:
        return BLOCKED_RETRY_SECONDS
    return excess * WINDOW_SECONDS / cap


def seconds_until_full(used: float, cap: int) -> float:
    """Seconds until nothing is used (the bucket is full): the headers' reset time."""
    return used * WINDOW_SECONDS / cap if cap > 0 and used > 0 else 0.0


def scope_refusals(
    scope: Scope, used: Used, in_flight: int, limits: LimitValues, est_input_tokens: int
) -> list[Refusal]:
    """Every check of one scope that fails, with how long until it would pass."""
    if (
        # The common case, decided without building anything: every check passes.
        used.requests + 1.0 <= limits.rpm
        and used.input_tokens + min(est_input_tokens, limits.itpm) <= limits.itpm
        and used.output_tokens + 1.0 <= limits.otpm
        and in_flight < limits.concurrent
        and min(limits.rpm, limits.itpm, limits.otpm) > 0
    ):
        return []
    out: list[Refusal] = []

    def check(dimension: Dimension, spent: float, need: float, cap: int) -> None:
        if cap <= 0:
            out.append(
                Refusal(scope=scope, dimension=dimension, limit=cap, retry_after=BLOCKED_RETRY_SECONDS)
            )
        elif spent + need > cap:
            wait = seconds_until(spent, need, cap)
            out.append(Refusal(scope=scope, dimension=dimension, limit=cap, retry_after=wait))

    check(Dimension.REQUESTS, used.requests, 1.0, limits.rpm)
    # An estimate above the whole bucket needs a full one (need capped at the bucket's size).
    check(Dimension.INPUT_TOKENS, used.input_tokens, float(min(est_input_tokens, limits.itpm)), limits.itpm)
    check(Dimension.OUTPUT_TOKENS, used.output_tokens, 1.0, limits.otpm)
    if limits.concurrent <= 0:
        out.append(
            Refusal(scope=scope, dimension=Dimension.CONCURRENT, limit=0, retry_after=BLOCKED_RETRY_SECONDS)
        )
    elif in_flight >= limits.concurrent:
        out.append(
            Refusal(
                scope=scope,
                dimension=Dimension.CONCURRENT,
                limit=limits.concurrent,
                retry_after=CONCURRENCY_RETRY_SECONDS,
            )
        )
    return out


def worst(refusals: Sequence[Refusal]) -> Refusal | None:
    """The refusal that takes longest to clear: retrying sooner would be refused again."""
    if not refusals:
        return None
    return max(refusals, key=lambda r: r.retry_after)
