"""Usage tiers and rate limits: tier table, token buckets, in-process and Redis backends."""

from runapi.limits.buckets import BackendUnavailable, LimiterBackend
from runapi.limits.limiter import (
    BucketState,
    Limiter,
    LimitExceeded,
    LimitState,
    LimitTicket,
    build_limiter,
)
from runapi.limits.memory import InProcessLimiterBackend
from runapi.limits.redis_backend import RedisLimiterBackend
from runapi.limits.tiers import LimitOverride, LimitValues, TierProgress, TierSpec, TierTable

__all__ = [
    "BackendUnavailable",
    "BucketState",
    "InProcessLimiterBackend",
    "LimitExceeded",
    "LimitOverride",
    "LimitState",
    "LimitTicket",
    "LimitValues",
    "Limiter",
    "LimiterBackend",
    "RedisLimiterBackend",
    "TierProgress",
    "TierSpec",
    "TierTable",
    "build_limiter",
]
