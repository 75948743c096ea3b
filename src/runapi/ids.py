"""Time-ordered identifiers (ULID).

Random uuid4 keys made every SQLite insert slower as tables grew (`performance.md`); a ULID sorts
by creation time, so inserts append to the index, and it doubles as a cursor for listing.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
# The 130 bits (ms << 80 | random) as 13 ten-bit pairs: 5 of the millisecond, 8 of the random part.
_MS_SHIFTS = (40, 30, 20, 10, 0)
_HIGH_SHIFTS = (50, 40, 30, 20, 10, 0)  # of random >> 20
_RAND_MASK = (1 << 80) - 1
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0
_ms_text = ""
_high = -1
_high_text = ""


_pool = b""
_pool_at = 0


def _random80() -> int:
    """80 random bits from the OS, fetched 4 KB at a time (one syscall per 409 ids, not each)."""
    global _pool, _pool_at
    if _pool_at + 10 > len(_pool):
        _pool, _pool_at = os.urandom(4096), 0
    start, _pool_at = _pool_at, _pool_at + 10
    return int.from_bytes(_pool[start:_pool_at], "big")


def new_ulid() -> str:
    """A 26-character Crockford base32 ULID, monotonic within one process."""
    global _last_ms, _last_rand, _ms_text, _high, _high_text
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms <= _last_ms:
            # Same millisecond (or a clock step back): bump the random part so ids stay ordered.
            ms = _last_ms
            rand = (_last_rand + 1) & _RAND_MASK
        else:
            rand = _random80()
            _ms_text = _encode(ms, _MS_SHIFTS)
        _last_ms, _last_rand = ms, rand
        # Ids come several per request, mostly many to a millisecond, where only the low bits of
        # the random part step: its upper 60 bits (6 characters) are encoded once per millisecond.
        high = rand >> 20
        if high != _high:
            _high, _high_text = high, _encode(high, _HIGH_SHIFTS)
        p = _PAIRS
        return _ms_text + _high_text + p[rand >> 10 & 1023] + p[rand & 1023]


def _encode(value: int, shifts: tuple[int, ...]) -> str:
    # Two characters (10 bits) per table lookup: a third of the cost of a loop over 5-bit groups.
    p = _PAIRS
    return "".join([p[value >> shift & 1023] for shift in shifts])


def ulid_time_ms(ulid: str) -> int:
    """The creation time (Unix ms) encoded in a ULID."""
    value = 0
    for ch in ulid[:10]:
        value = (value << 5) | _ALPHABET.index(ch)
    return value


def strip_prefix(identifier: str) -> str:
    """`task_01J…`, `chatcmpl-01J…`, `resp_01J…` and `msg_01J…` all name the same task."""
    for sep in ("_", "-"):
        _head, found, tail = identifier.rpartition(sep)
        if found and len(tail) == 26:
            return tail
    return identifier
