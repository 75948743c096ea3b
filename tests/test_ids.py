"""ULIDs: Crockford base32 of (ms << 80 | random), ordered within a process."""

from __future__ import annotations

import time

import pytest

from runapi.ids import new_ulid, strip_prefix, ulid_time_ms

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _decode(ulid: str) -> int:
    value = 0
    for ch in ulid:
        value = (value << 5) | _ALPHABET.index(ch)
    return value


def test_ids_encode_the_creation_millisecond_and_round_trip() -> None:
    before = time.time_ns() // 1_000_000
    ulid = new_ulid()
    after = time.time_ns() // 1_000_000
    assert len(ulid) == 26
    assert set(ulid) <= set(_ALPHABET)
    assert before <= ulid_time_ms(ulid) <= after
    assert _decode(ulid) >> 80 == ulid_time_ms(ulid)
    assert _decode(ulid) < 1 << 128


def test_ids_made_in_a_row_are_unique_and_sorted() -> None:
    ids = [new_ulid() for _ in range(20_000)]  # many share a millisecond: the random part steps
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_prefixed_ids_name_the_same_task() -> None:
    ulid = new_ulid()
    assert {strip_prefix(p + ulid) for p in ("task_", "chatcmpl-", "resp_", "msg_")} == {ulid}


def test_the_random_part_steps_by_one_across_its_cached_upper_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Within a millisecond only the low 20 bits are encoded afresh; a carry into the upper 60 bits
    # must show in the text too. A clock stepped back keeps the last millisecond (ids stay ordered).
    import runapi.ids as ids

    future_ms = time.time_ns() // 1_000_000 + 60_000
    monkeypatch.setattr(ids, "_last_ms", future_ms)
    monkeypatch.setattr(ids, "_last_rand", (7 << 20) - 2)
    monkeypatch.setattr(
        ids, "_ms_text", "".join(ids._PAIRS[future_ms >> s & 1023] for s in (40, 30, 20, 10, 0))
    )
    a, b, c = new_ulid(), new_ulid(), new_ulid()
    assert [_decode(u) for u in (a, b, c)] == [(future_ms << 80) | ((7 << 20) + k) for k in (-1, 0, 1)]
    assert a < b < c
    assert ulid_time_ms(c) == future_ms
