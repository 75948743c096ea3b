"""Bucket state in Redis, shared by every gateway process: one Lua script call per check-and-debit.

Scripts are loaded once (SCRIPT LOAD) and run by sha (EVALSHA); after a Redis restart the first
NOSCRIPT reply reloads them. Every call is bounded by `timeout`; any failure surfaces as
`BackendUnavailable`, and the Limiter applies the configured failure mode. (A call that ran in
Redis but whose reply was lost leaves a slot behind; its lease expires it.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from runapi.limits import redis_script
from runapi.limits.buckets import (
    Adjustment,
    AdmitOutcome,
    AdmitRequest,
    BackendUnavailable,
    Dimension,
    Refusal,
    Scope,
    SlotRef,
    Used,
)
from runapi.limits.resp import RespClient, RespError
from runapi.limits.tiers import LimitValues

DEFAULT_PREFIX = "runapi:rl:"
# Lease refreshes are pipelined in batches of this many slots.
_REFRESH_BATCH = 256


class RedisLimiterBackend:
    needs_lease_refresh = True

    def __init__(
        self,
        client: RespClient,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 0.25,
        lease_seconds: float = 60.0,
        output_flush_seconds: float = 0.25,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`clock` (seconds) replaces the Redis server's clock; for tests only, since every process
        sharing the buckets must use the same clock."""
        self._redis = client
        self._prefix = prefix
        self._timeout = timeout
        self.lease_seconds = lease_seconds
        self.output_flush_seconds = output_flush_seconds
        self._lease_ms = str(int(lease_seconds * 1000))
        self._clock = clock
        self._shas: dict[str, str] = {}

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.25, **kwargs: Any) -> RedisLimiterBackend:
        # One multiplexed connection (limits/resp.py): a burst of thousands of admissions pipelines
        # on it instead of queueing for pooled connections. No client-side retries: the caller's
        # deadline is `timeout`, and the scripts debit, so a blind retry could debit twice.
        return cls(RespClient.from_url(url, connect_timeout=timeout), timeout=timeout, **kwargs)

    async def load_scripts(self) -> None:
        """Load the scripts now (optional; the first call loads them otherwise)."""
        for source in (
            redis_script.ADMIT,
            redis_script.ADJUST,
            redis_script.REFRESH,
            redis_script.QUEUE_JOIN,
            redis_script.QUEUE_REFRESH,
        ):
            await self._bounded(self._load(source))

    async def admit(self, request: AdmitRequest) -> AdmitOutcome:
        slot = request.slot
        args = [
            self._now_ms(),
            slot.slot_id,
            self._lease_ms,
            str(request.est_input_tokens),
            *_caps(request.key_limits, with_concurrency=True),
            *_caps(request.account_limits, with_concurrency=True),
        ]
        reply = await self._bounded(self._run(redis_script.ADMIT, self._keys(slot), args))
        key, account = _used(reply[5:11])
        refusal = None
        if reply[0] != "1":
            refusal = Refusal(
                scope=Scope(reply[2]),
                dimension=Dimension(reply[3]),
                limit=int(float(reply[4])),
                retry_after=float(reply[1]) / 1000,
            )
        return AdmitOutcome(refusal=refusal, key=key, account=account)

    async def adjust(self, adjustment: Adjustment) -> tuple[Used, Used]:
        slot = adjustment.slot
        args = [
            self._now_ms(),
            slot.slot_id,
            self._lease_ms,
            str(adjustment.input_delta),
            str(adjustment.output_tokens),
            "1" if adjustment.release else "0",
            *_caps(adjustment.key_limits, with_concurrency=False),
            *_caps(adjustment.account_limits, with_concurrency=False),
        ]
        reply = await self._bounded(self._run(redis_script.ADJUST, self._keys(slot), args))
        return _used(reply)

    async def refresh_leases(self, slots: Sequence[SlotRef]) -> None:
        await self._refresh(redis_script.REFRESH, slots, self._slot_keys)

    async def join_queue(self, place: SlotRef, bound: int) -> bool:
        args = [self._now_ms(), place.slot_id, self._lease_ms, str(bound)]
        reply: list[str] = await self._bounded(
            self._run(redis_script.QUEUE_JOIN, [self._queue_key(place)], args)
        )
        return reply == ["1"]

    async def leave_queue(self, place: SlotRef) -> None:
        await self._bounded(
            self._redis.call("ZREM", self._queue_key(place), place.slot_id, reply_within=self._timeout)
        )

    async def refresh_queue_leases(self, places: Sequence[SlotRef]) -> None:
        await self._refresh(redis_script.QUEUE_REFRESH, places, lambda place: (self._queue_key(place),))

    async def aclose(self) -> None:
        await self._redis.aclose()

    # -- internals

    def _keys(self, slot: SlotRef) -> list[str]:
        # One hash tag per account keeps a request's keys in one Redis Cluster slot.
        base = f"{self._prefix}{{a{slot.account_id}}}"
        key_buckets = f"{base}:k:{slot.key_id}:{slot.model_class}"
        account_buckets = f"{base}:a:{slot.model_class}"
        return [key_buckets, key_buckets + ":slots", account_buckets, account_buckets + ":slots"]

    def _slot_keys(self, slot: SlotRef) -> tuple[str, ...]:
        keys = self._keys(slot)
        return keys[1], keys[3]

    def _queue_key(self, place: SlotRef) -> str:
        return self._keys(place)[0] + ":queue"

    def _now_ms(self) -> str:
        return "-1" if self._clock is None else repr(self._clock() * 1000)

    async def _bounded(self, call: Any) -> Any:
        """Any failure of `call` as `BackendUnavailable`. Each command carries the deadline itself
        (`RespClient.call`): an outer `asyncio.timeout` would also cancel a call whose reply was
        already waiting in the socket when a busy loop reached the deadline."""
        try:
            return await call
        except (RespError, OSError, TimeoutError) as exc:
            raise BackendUnavailable(f"Redis did not answer: {type(exc).__name__}: {exc}") from exc

    async def _load(self, source: str) -> str:
        sha: str = await self._redis.call("SCRIPT", "LOAD", source, reply_within=self._timeout)
        self._shas[source] = sha
        return sha

    async def _run(self, source: str, keys: list[str], args: list[str]) -> list[str]:
        sha = self._shas.get(source) or await self._load(source)
        try:
            reply = await self._redis.call(
                "EVALSHA", sha, str(len(keys)), *keys, *args, reply_within=self._timeout
            )
        except RespError as exc:
            if exc.kind != "NOSCRIPT":
                raise
            # Redis restarted or flushed its script cache since we loaded it.
            sha = await self._load(source)
            reply = await self._redis.call(
                "EVALSHA", sha, str(len(keys)), *keys, *args, reply_within=self._timeout
            )
        return [str(part) for part in reply]

    async def _refresh(
        self, source: str, refs: Sequence[SlotRef], keys_of: Callable[[SlotRef], tuple[str, ...]]
    ) -> None:
        for start in range(0, len(refs), _REFRESH_BATCH):
            await self._bounded(self._refresh_batch(source, refs[start : start + _REFRESH_BATCH], keys_of))

    async def _refresh_batch(
        self, source: str, refs: Sequence[SlotRef], keys_of: Callable[[SlotRef], tuple[str, ...]]
    ) -> None:
        sha = self._shas.get(source) or await self._load(source)
        for attempt in range(2):
            commands: list[tuple[str | bytes, ...]] = []
            for ref in refs:
                keys = keys_of(ref)
                commands.append(
                    ("EVALSHA", sha, str(len(keys)), *keys, self._now_ms(), ref.slot_id, self._lease_ms)
                )
            try:
                await self._redis.call_many(commands, reply_within=self._timeout)
                return
            except RespError as exc:
                if attempt or exc.kind != "NOSCRIPT":
                    raise
                sha = await self._load(source)


def _caps(limits: LimitValues, *, with_concurrency: bool) -> list[str]:
    caps = [limits.rpm, limits.itpm, limits.otpm]
    if with_concurrency:
        caps.append(limits.concurrent)
    return [str(c) for c in caps]


def _used(parts: Sequence[str]) -> tuple[Used, Used]:
    values = [float(p) for p in parts]
    return Used(*values[0:3]), Used(*values[3:6])
