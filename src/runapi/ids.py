"""Time-ordered identifiers (ULID).

Random uuid4 keys made every SQLite insert slower as tables grew (`performance.md`); a ULID sorts
by creation time, so inserts append to the index, and it doubles as a cursor for listing.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def new_ulid() -> str:
    """A 26-character Crockford base32 ULID, monotonic within one process."""
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms <= _last_ms:
            # Same millisecond (or a clock step back): bump the random part so ids stay ordered.
            ms = _last_ms
            rand = (_last_rand + 1) & ((1 << 80) - 1)
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last_ms, _last_rand = ms, rand
    value = (ms << 80) | rand
    out = []
    for _ in range(26):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


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
