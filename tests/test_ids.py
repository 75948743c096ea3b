"""ULIDs: Crockford base32 of (ms << 80 | random), ordered within a process."""

from __future__ import annotations

import time

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
