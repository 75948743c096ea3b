"""A separate gateway-like process for the multi-process Redis test.

    python -m tests.limits.hammer URL PREFIX MODE LIMIT ATTEMPTS START_AT

Waits until wall-clock START_AT (so both processes hammer at once), tries ATTEMPTS admissions of
one key (none released), a couple every 10 ms so the two processes' attempts interleave, and
prints how many were admitted. MODE `rpm` limits requests per
minute to LIMIT; MODE `concurrent` limits requests in flight to LIMIT.
"""

from __future__ import annotations

import asyncio
import sys
import time

from runapi.errors import RateLimited
from runapi.limits import Limiter, LimitValues, RedisLimiterBackend

_BATCH = 2
_PAUSE = 0.01


async def hammer(url: str, prefix: str, mode: str, limit: int, attempts: int, start_at: float) -> int:
    big = 1_000_000
    if mode == "rpm":
        limits = LimitValues(rpm=limit, itpm=big, otpm=big, concurrent=big)
    else:
        limits = LimitValues(rpm=big, itpm=big, otpm=big, concurrent=limit)
    limiter = Limiter(RedisLimiterBackend.from_url(url, prefix=prefix, timeout=5.0))

    async def one() -> bool:
        try:
            await limiter.admit(
                key_id="key_shared", account_id=7, model_class="standard", limits=limits, est_input_tokens=10
            )
        except RateLimited:
            return False
        return True

    await asyncio.sleep(max(0.0, start_at - time.time()))
    admitted = 0
    for start in range(0, attempts, _BATCH):
        results = await asyncio.gather(*(one() for _ in range(min(_BATCH, attempts - start))))
        admitted += sum(results)
        await asyncio.sleep(_PAUSE)
    await limiter.aclose()
    return admitted


def main() -> None:
    url, prefix, mode, limit, attempts, start_at = sys.argv[1:7]
    count = asyncio.run(hammer(url, prefix, mode, int(limit), int(attempts), float(start_at)))
    sys.stdout.write(f"{count}\n")


if __name__ == "__main__":
    main()
