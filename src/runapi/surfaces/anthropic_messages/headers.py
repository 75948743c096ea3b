"""`anthropic-ratelimit-*` headers (protocols.md §3.7, runapi-contract §6.3). Resets are RFC 3339."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from runapi.canonical.codec import RateLimitView


def rfc3339(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rate_limit_headers(view: RateLimitView, now: float | None = None) -> dict[str, str]:
    now = time.time() if now is None else now

    def reset(seconds: float) -> str:
        # Round up: a client that waits until the stated second must find the bucket refilled.
        return rfc3339(math.ceil(now + max(0.0, seconds)))

    # `tokens` reports whichever token bucket is more restrictive (lower fraction remaining).
    input_tighter = view.input_tokens_remaining * view.output_tokens_limit <= (
        view.output_tokens_remaining * view.input_tokens_limit
    )
    if input_tighter:
        t_limit, t_rem, t_reset = (
            view.input_tokens_limit,
            view.input_tokens_remaining,
            view.input_tokens_reset_s,
        )
    else:
        t_limit, t_rem, t_reset = (
            view.output_tokens_limit,
            view.output_tokens_remaining,
            view.output_tokens_reset_s,
        )
    p = "anthropic-ratelimit-"
    return {
        p + "requests-limit": str(view.requests_limit),
        p + "requests-remaining": str(max(0, view.requests_remaining)),
        p + "requests-reset": reset(view.requests_reset_s),
        p + "input-tokens-limit": str(view.input_tokens_limit),
        p + "input-tokens-remaining": str(max(0, view.input_tokens_remaining)),
        p + "input-tokens-reset": reset(view.input_tokens_reset_s),
        p + "output-tokens-limit": str(view.output_tokens_limit),
        p + "output-tokens-remaining": str(max(0, view.output_tokens_remaining)),
        p + "output-tokens-reset": reset(view.output_tokens_reset_s),
        p + "tokens-limit": str(t_limit),
        p + "tokens-remaining": str(max(0, t_rem)),
        p + "tokens-reset": reset(t_reset),
    }
