"""Request header rules shared by every generation surface (runapi-contract §2, §3.4)."""

from __future__ import annotations

import re

from multidict import CIMultiDictProxy

from runapi.errors import InvalidRequest

_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]{1,512}$")
MAX_PREFER_WAIT = 300.0


def client_request_id(headers: CIMultiDictProxy[str]) -> str | None:
    value = headers.get("X-Client-Request-Id")
    if value is None:
        return None
    if not _PRINTABLE_ASCII.match(value):
        raise InvalidRequest(
            "X-Client-Request-Id must be 1 to 512 printable ASCII characters.", param="X-Client-Request-Id"
        )
    return value


def idempotency_key(headers: CIMultiDictProxy[str]) -> str | None:
    value = headers.get("Idempotency-Key")
    if value is None:
        return None
    if not value or len(value) > 512:
        raise InvalidRequest("Idempotency-Key must be 1 to 512 characters.", param="Idempotency-Key")
    return value


class Prefer:
    """RFC 7240 `Prefer`: `respond-async` and `wait=N` are the two we honour."""

    __slots__ = ("respond_async", "wait")

    def __init__(self, respond_async: bool = False, wait: float | None = None) -> None:
        self.respond_async = respond_async
        self.wait = wait

    @classmethod
    def parse(cls, headers: CIMultiDictProxy[str]) -> Prefer:
        raw = headers.getall("Prefer", [])
        if not raw:
            return _NO_PREFERENCE
        respond_async = False
        wait: float | None = None
        for header in raw:
            for token in header.split(","):
                name, _, value = token.strip().partition("=")
                name = name.strip().lower()
                if name == "respond-async":
                    respond_async = True
                elif name == "wait":
                    try:
                        wait = min(MAX_PREFER_WAIT, max(0.0, float(value.strip().strip('"'))))
                    except ValueError:
                        raise InvalidRequest(
                            "Prefer: wait=N needs a number of seconds.", param="Prefer"
                        ) from None
        return cls(respond_async, wait)


_NO_PREFERENCE = Prefer()
