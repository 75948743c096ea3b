"""Limiter behaviour, run on both backends: bursts, continuous refill, token estimates and
corrections, output debt, concurrency, account-wide buckets, and the headers' state."""

from __future__ import annotations

import pytest

from runapi.errors import RateLimited
from runapi.limits import InProcessLimiterBackend, Limiter, LimitExceeded, LimitTicket, LimitValues
from tests.limits.conftest import FakeClock


def values(
    rpm: int = 1000, itpm: int = 1_000_000, otpm: int = 1_000_000, concurrent: int = 100
) -> LimitValues:
    return LimitValues(rpm=rpm, itpm=itpm, otpm=otpm, concurrent=concurrent)


async def admit(
    limiter: Limiter, limits: LimitValues, est: int = 10, key: str = "key_a", account: int = 1
) -> LimitTicket:
    return await limiter.admit(
        key_id=key, account_id=account, model_class="standard", limits=limits, est_input_tokens=est
    )


async def refused(
    limiter: Limiter, limits: LimitValues, est: int = 10, key: str = "key_a", account: int = 1
) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as info:
        await admit(limiter, limits, est, key, account)
    return info.value


async def test_burst_up_to_the_limit_then_refused(limiter: Limiter) -> None:
    limits = values(rpm=5)
    remaining = [limiter.view(await admit(limiter, limits)).requests.remaining for _ in range(5)]
    assert remaining == [4, 3, 2, 1, 0]
    error = await refused(limiter, limits)
    assert isinstance(error, RateLimited)
    assert error.status == 429
    assert error.limit_type == "requests"
    assert error.retry_after == pytest.approx(12.0)  # one request every 60/5 seconds
    assert "requests per minute" in error.message


async def test_refill_is_continuous_not_a_fixed_window(limiter: Limiter, clock: FakeClock) -> None:
    limits = values(rpm=60)
    for _ in range(60):
        await admit(limiter, limits)
    await refused(limiter, limits)
    clock.advance(1.0)  # 60 RPM refills one request per second, not 60 at the top of a minute
    await admit(limiter, limits)
    error = await refused(limiter, limits)
    assert error.retry_after == pytest.approx(1.0)
    clock.advance(0.5)
    error = await refused(limiter, limits)
    assert error.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    await admit(limiter, limits)


async def test_refill_stops_at_the_limit(limiter: Limiter, clock: FakeClock) -> None:
    limits = values(rpm=3)
    await admit(limiter, limits)
    clock.advance(3600)  # an idle hour banks no more than one minute's worth
    for _ in range(3):
        await admit(limiter, limits)
    await refused(limiter, limits)


async def test_refusal_debits_nothing(limiter: Limiter) -> None:
    limits = values(rpm=2, itpm=1000, concurrent=2)
    first = await admit(limiter, limits, est=900)
    error = await refused(limiter, limits, est=500)
    assert error.limit_type == "tokens"
    assert error.retry_after == pytest.approx((500 - 100) * 60 / 1000)
    # The last request, the last 100 tokens and the last slot are all still there.
    second = await admit(limiter, limits, est=100)
    state = limiter.view(second)
    assert (state.requests.remaining, state.input_tokens.remaining) == (0, 0)
    for ticket in (first, second):
        await limiter.release(ticket, input_tokens=None, output_tokens=0)


async def test_input_estimate_is_corrected_on_release(limiter: Limiter) -> None:
    limits = values(itpm=1000)
    ticket = await admit(limiter, limits, est=800)
    assert limiter.view(ticket).input_tokens.remaining == 200
    await limiter.release(ticket, input_tokens=300, output_tokens=0)
    assert limiter.view(ticket).input_tokens.remaining == 700  # 500 refunded
    ticket = await admit(limiter, limits, est=700)
    assert limiter.view(ticket).input_tokens.remaining == 0


async def test_low_estimate_puts_the_bucket_in_debt(limiter: Limiter) -> None:
    limits = values(itpm=1000)
    ticket = await admit(limiter, limits, est=100)
    await limiter.release(ticket, input_tokens=1500, output_tokens=0)
    assert limiter.view(ticket).input_tokens.remaining == 0
    error = await refused(limiter, limits, est=10)
    # Level is 1000 - 1500 = -500; reaching 10 again takes 510 tokens at 1000/min.
    assert error.retry_after == pytest.approx(510 * 60 / 1000)


async def test_estimate_above_the_bucket_needs_a_full_bucket(limiter: Limiter, clock: FakeClock) -> None:
    limits = values(itpm=1000)
    big = await admit(limiter, limits, est=5000)  # admitted: the bucket was full
    await limiter.release(big, input_tokens=5000, output_tokens=0)
    error = await refused(limiter, limits, est=5000)
    assert error.retry_after == pytest.approx(5000 * 60 / 1000)  # from -4000 back to full
    clock.advance(300)
    await admit(limiter, limits, est=5000)


async def test_output_goes_negative_without_cutting_the_stream(limiter: Limiter) -> None:
    limits = values(otpm=100)
    ticket = await admit(limiter, limits)
    for _ in range(25):
        await limiter.add_output(ticket, 10)  # 250 tokens against 100/min: never raises
    assert limiter.view(ticket).output_tokens.remaining == 0
    await limiter.release(ticket, input_tokens=None, output_tokens=250)
    error = await refused(limiter, limits)
    assert error.limit_type == "tokens"
    # Debited exactly once: level -150, back to 1 token at 100/min.
    assert error.retry_after == pytest.approx(151 * 60 / 100)


async def test_release_debits_the_output_not_yet_reported(limiter: Limiter) -> None:
    limits = values(otpm=1000)
    ticket = await admit(limiter, limits)
    await limiter.add_output(ticket, 40)
    await limiter.release(ticket, input_tokens=None, output_tokens=100)
    assert limiter.view(ticket).output_tokens.remaining == 900


async def test_release_without_usage_keeps_what_was_streamed(limiter: Limiter) -> None:
    limits = values(otpm=1000, itpm=1000)
    ticket = await admit(limiter, limits, est=300)
    await limiter.add_output(ticket, 70)
    await limiter.release(ticket, input_tokens=None, output_tokens=None)
    state = limiter.view(ticket)
    assert (state.input_tokens.remaining, state.output_tokens.remaining) == (700, 930)


async def test_concurrency_cap_and_release(limiter: Limiter) -> None:
    limits = values(concurrent=2)
    first = await admit(limiter, limits)
    second = await admit(limiter, limits)
    error = await refused(limiter, limits)
    assert error.limit_type == "requests"
    assert "concurrent" in error.message
    assert error.retry_after == pytest.approx(1.0)
    await limiter.release(first, input_tokens=10, output_tokens=0)
    third = await admit(limiter, limits)
    # Releasing twice frees nothing more.
    await limiter.release(first, input_tokens=10, output_tokens=0)
    await refused(limiter, limits)
    for ticket in (second, third):
        await limiter.release(ticket, input_tokens=10, output_tokens=0)
    await admit(limiter, limits)


async def test_release_is_idempotent_for_tokens(limiter: Limiter) -> None:
    limits = values(itpm=1000, otpm=1000)
    ticket = await admit(limiter, limits, est=100)
    for _ in range(3):
        await limiter.release(ticket, input_tokens=400, output_tokens=200)
    other = await admit(limiter, limits, est=0)
    assert limiter.view(other).input_tokens.remaining == 600
    assert limiter.view(other).output_tokens.remaining == 800


async def test_account_bucket_bounds_all_its_keys(limiter: Limiter) -> None:
    limits = values(rpm=3)
    await admit(limiter, limits, key="key_a")
    await admit(limiter, limits, key="key_b")
    await admit(limiter, limits, key="key_c")
    error = await refused(limiter, limits, key="key_d")
    assert "account" in error.message
    # Another account is untouched.
    await admit(limiter, limits, key="key_x", account=2)


async def test_account_concurrency_spans_keys(limiter: Limiter) -> None:
    limits = values(concurrent=1)
    ticket = await admit(limiter, limits, key="key_a")
    await refused(limiter, limits, key="key_b")
    await limiter.release(ticket, input_tokens=None, output_tokens=None)
    await admit(limiter, limits, key="key_b")


async def test_lowered_key_keeps_the_account_ceiling(limiter: Limiter) -> None:
    ceiling = values(rpm=10)
    lowered = LimitValues(rpm=2, itpm=ceiling.itpm, otpm=ceiling.otpm, concurrent=100, account=ceiling)
    await admit(limiter, lowered, key="key_low")
    await admit(limiter, lowered, key="key_low")
    error = await refused(limiter, lowered, key="key_low")
    assert "API key" in error.message
    assert error.retry_after == pytest.approx(30.0)
    for _ in range(8):  # the account still has its full tier budget for other keys
        await admit(limiter, ceiling, key="key_full")
    await refused(limiter, ceiling, key="key_full")


async def test_model_classes_have_separate_buckets(limiter: Limiter) -> None:
    limits = values(rpm=1)
    await limiter.admit(key_id="k", account_id=1, model_class="standard", limits=limits, est_input_tokens=1)
    await limiter.admit(key_id="k", account_id=1, model_class="highspeed", limits=limits, est_input_tokens=1)
    with pytest.raises(LimitExceeded):
        await limiter.admit(
            key_id="k", account_id=1, model_class="standard", limits=limits, est_input_tokens=1
        )


async def test_zero_limit_blocks(limiter: Limiter) -> None:
    error = await refused(limiter, values(rpm=0))
    assert "is 0" in error.message
    assert error.retry_after == pytest.approx(60.0)
    await refused(limiter, values(concurrent=0))
    await refused(limiter, values(otpm=0))


async def test_a_raised_limit_applies_to_the_next_request(limiter: Limiter) -> None:
    low = values(rpm=6)
    for _ in range(6):
        await admit(limiter, low)
    await refused(limiter, low)
    high = values(rpm=60)  # promoted: what was used still counts, against the higher ceiling
    ticket = await admit(limiter, high)
    assert (limiter.view(ticket).requests.limit, limiter.view(ticket).requests.remaining) == (60, 53)


async def test_a_lowered_limit_applies_at_once(limiter: Limiter, clock: FakeClock) -> None:
    for _ in range(5):
        await admit(limiter, values(rpm=60))
    lowered = values(rpm=4)  # an operator override below what was already used
    error = await refused(limiter, lowered)
    assert error.retry_after == pytest.approx(2 * 60 / 4)  # 5 used + 1 must drain to 4 at 4/min
    clock.advance(30)
    await admit(limiter, lowered)


async def test_view_reports_limit_remaining_and_reset(limiter: Limiter) -> None:
    limits = values(rpm=60, itpm=10_000, otpm=1000)
    ticket = await admit(limiter, limits, est=2500)
    state = limiter.view(ticket)
    assert (state.requests.limit, state.requests.remaining) == (60, 59)
    assert state.requests.reset_seconds == pytest.approx(1.0)
    assert (state.input_tokens.limit, state.input_tokens.remaining) == (10_000, 7500)
    assert state.input_tokens.reset_seconds == pytest.approx(15.0)
    assert state.output_tokens.reset_seconds == 0.0
    assert state.tokens is state.input_tokens  # 75% left beats 100% left
    await limiter.add_output(ticket, 500)
    assert limiter.view(ticket).tokens == limiter.view(ticket).output_tokens  # now 50% left


async def test_refused_error_carries_the_state_for_headers(limiter: Limiter) -> None:
    limits = values(rpm=1)
    await admit(limiter, limits)
    error = await refused(limiter, limits)
    assert error.state.requests.remaining == 0
    assert error.state.requests.reset_seconds == pytest.approx(60.0)


async def test_disabled_limiter_admits_everything(clock: FakeClock) -> None:
    limiter = Limiter(InProcessLimiterBackend(clock=clock), enabled=False)
    limits = values(rpm=1, concurrent=1)
    tickets = [await admit(limiter, limits) for _ in range(5)]
    assert not tickets[0].checked
    assert limiter.view(tickets[0]).requests.remaining == 1
    await limiter.add_output(tickets[0], 10)
    await limiter.release(tickets[0], input_tokens=1, output_tokens=1)


async def test_memory_forgets_drained_idle_buckets(clock: FakeClock) -> None:
    backend = InProcessLimiterBackend(clock=clock)
    limiter = Limiter(backend, clock=clock)
    limits = values(rpm=60)
    held = await admit(limiter, limits, key="key_busy", account=0)
    for n in range(4094):  # with the first and the last: 4096 admissions, the last prunes
        ticket = await admit(limiter, limits, key=f"key_{n}", account=n + 1)
        await limiter.release(ticket, input_tokens=None, output_tokens=None)
        clock.advance(0.001)
    clock.advance(60)
    await admit(limiter, limits, key="key_last", account=99_999)
    # Left: the busy key and its account (a slot in flight), and the newest admission's two.
    assert len(backend) == 4
    await limiter.release(held, input_tokens=None, output_tokens=None)
