"""MiniMax's error envelopes and the catalogue of errors the simulator can answer with.

Two envelopes exist (protocols §5.7):

* HTTP errors on the OpenAI-compatible route, the internal code in a trailing ``(NNNN)``::

    {"type": "error",
     "error": {"type": "bad_request_error", "message": "invalid params, ... (2013)", "http_code": "400"},
     "request_id": "..."}

* HTTP 200 with only ``{"base_resp": {"status_code": CODE, "status_msg": "..."}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RETRYABLE",
    "SimError",
    "base_resp_body",
    "error_for_status",
    "invalid_params",
    "stream_error_body",
    "unauthorized",
]


@dataclass(slots=True)
class SimError(Exception):
    """An error answered as MiniMax would: ``status`` with the ``type``/``code`` envelope.

    ``body`` replaces the JSON envelope when set (a load balancer's HTML page, for instance).
    """

    status: int
    type: str
    message: str
    code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str = "application/json"

    def envelope(self, request_id: str) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {
                "type": self.type,
                "message": f"{self.message} ({self.code})",
                "http_code": str(self.status),
            },
            "request_id": request_id,
        }


def invalid_params(detail: str) -> SimError:
    """MiniMax's catch-all 400: unknown model, bad history, context too long, bad JSON."""
    return SimError(400, "bad_request_error", f"invalid params, {detail}", 2013)


_LOGIN_FAIL = "login fail: Please carry the API secret key in the 'Authorization' field of the request header"


def unauthorized() -> SimError:
    return SimError(401, "authorized_error", _LOGIN_FAIL, 1004)


_BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)

# status -> (error.type, message, code). 502 is special-cased: what a client actually gets there
# is the load balancer's HTML page, not MiniMax JSON, and gateways must survive it.
_BY_STATUS: dict[int, tuple[str, str, int]] = {
    400: ("bad_request_error", "invalid params, simulated bad request", 2013),
    401: ("authorized_error", _LOGIN_FAIL, 1004),
    403: ("bad_request_error", "your current token plan not support model", 2061),
    404: ("bad_request_error", "invalid params, not found", 2013),
    408: ("api_error", "request timeout", 1001),
    429: ("rate_limit_error", "rate limit exceeded(RPM)", 1002),
    500: ("api_error", "unknown error", 1000),
    503: ("api_error", "service unavailable", 1000),
    504: ("api_error", "request timeout", 1001),
    529: (
        "overloaded_error",
        "The server cluster is currently under high load. Please retry your request after 1-2 minutes.",
        2064,
    ),
}


def error_for_status(status: int, *, variant: int = 0, retry_after: int | None = None) -> SimError:
    """The error MiniMax would plausibly send with HTTP ``status``.

    ``variant`` picks among equivalent bodies (500 is either 1000 "unknown error" or 1033
    "system error"). ``retry_after`` adds a ``Retry-After`` header, which MiniMax itself never sends.
    """
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    if status == 502:
        return SimError(
            502, "api_error", "bad gateway", 1000, headers, body=_BAD_GATEWAY_HTML, content_type="text/html"
        )
    if status == 500 and variant % 2:
        return SimError(500, "api_error", "system error", 1033, headers)
    known = _BY_STATUS.get(status)
    if known is None:
        known = (
            ("bad_request_error", "invalid params", 2013)
            if status < 500
            else ("api_error", "unknown error", 1000)
        )
    error_type, message, code = known
    return SimError(status, error_type, message, code, headers)


RETRYABLE: tuple[tuple[int, int], ...] = ((429, 0), (500, 0), (500, 1), (503, 0), (504, 0), (529, 0))
"""(status, variant) pairs ``error_rate`` draws from: errors a client may retry."""

_BASE_RESP_MESSAGES: Mapping[int, str] = {
    1000: "unknown error",
    1001: "request timeout",
    1002: "rate limit exceeded(RPM)",
    1004: _LOGIN_FAIL,
    1008: "insufficient balance",
    1013: "internal service error",
    1024: "internal error",
    1026: "input new_sensitive",
    1027: "output new_sensitive",
    1033: "system error",
    1039: "rate limit exceeded(TPM)",
    1041: "conn limit",
    1042: "illegal characters in input",
    2013: "invalid params",
    2045: "rate growth limit",
    2049: "invalid api key",
    2056: "usage limit exceeded, please wait for the next 5-hour window",
    2061: "your current token plan not support model",
}


def base_resp_body(code: int) -> dict[str, Any]:
    """The HTTP-200 error body: nothing but ``base_resp``."""
    return {"base_resp": {"status_code": code, "status_msg": _BASE_RESP_MESSAGES.get(code, "error")}}


def stream_error_body(code: int, request_id: str) -> dict[str, Any]:
    """The frame sent inside a stream that fails after it started.

    It carries both detection paths: an ``error`` key (the OpenAI SDK raises ``APIError`` on it)
    and a non-zero ``base_resp`` (what MiniMax-aware clients check).
    """
    message = _BASE_RESP_MESSAGES.get(code, "unknown error")
    http_code = "400" if code in (1026, 1027, 1042, 2013) else "500"
    return {
        "type": "error",
        "error": {"type": "api_error", "message": f"{message} ({code})", "http_code": http_code},
        "request_id": request_id,
        "base_resp": {"status_code": code, "status_msg": message},
    }
