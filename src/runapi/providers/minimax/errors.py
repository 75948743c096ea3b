"""MiniMax failures → our error tree (protocols.md §5.7, §6.10).

MiniMax puts its own code at the end of the message, `"... (2013)"`, or in `base_resp.status_code`
on a 200. The code picks the error class from one table. Code 2013 covers several causes, so its
message is matched against a short table of phrases; nothing else looks at message text.
"""

from __future__ import annotations

import re

from runapi.errors import (
    ContentPolicyViolation,
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    RunapiError,
    UpstreamError,
    UpstreamQuotaExhausted,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from runapi.providers.openai_wire.errors import (
    STATUS_ERRORS,
    ErrorInfo,
    ErrorMapper,
    build_error,
    error_info,
    misconfigured,
)
from runapi.providers.openai_wire.wire import Chunk

CODE_PATTERN = re.compile(r"\((\d{3,4})\)\s*$")

#: The credential codes: the operator's key is wrong. Never surfaced as a 401 to the client.
MISCONFIGURED_CODES = frozenset({1004, 2049})

#: MiniMax code → our error class.
MINIMAX_CODES: dict[int, type[RunapiError]] = {
    1000: UpstreamError,  # unknown error
    1001: UpstreamTimeout,  # request timeout
    1002: UpstreamRateLimited,  # RPM
    1008: UpstreamQuotaExhausted,  # insufficient balance
    1013: UpstreamError,  # internal service error
    1024: UpstreamError,  # internal error
    1026: ContentPolicyViolation,  # input flagged as sensitive
    1027: ContentPolicyViolation,  # output flagged as sensitive
    1028: UpstreamQuotaExhausted,  # quota exhausted (MiniMax CLI source; unconfirmed)
    1030: UpstreamQuotaExhausted,  # quota exhausted (MiniMax CLI source; unconfirmed)
    1033: UpstreamError,  # system error
    1039: UpstreamRateLimited,  # TPM
    1041: UpstreamRateLimited,  # connection limit
    1042: ContentPolicyViolation,  # too many invisible or illegal characters
    2013: InvalidRequest,  # invalid parameters; refined by INVALID_PARAMS_PHRASES
    2045: UpstreamRateLimited,  # rate growth limit
    2056: UpstreamQuotaExhausted,  # plan's usage window
    2061: UpstreamQuotaExhausted,  # model not in plan
}

#: 2013 is a catch-all: these phrases (lower case) name the cause.
INVALID_PARAMS_PHRASES: tuple[tuple[str, type[RunapiError]], ...] = (
    ("unknown model", ModelNotFound),
    ("context window exceeds", ContextLengthExceeded),
    ("context length", ContextLengthExceeded),
)


def minimax_code(info: ErrorInfo) -> int | None:
    if info.code is not None and info.code.isdigit():
        return int(info.code)
    match = CODE_PATTERN.search(info.message)
    return int(match.group(1)) if match else None


def error_class(code: int, message: str) -> type[RunapiError] | None:
    cls = MINIMAX_CODES.get(code)
    if code == 2013:
        lowered = message.lower()
        for phrase, refined in INVALID_PARAMS_PHRASES:
            if phrase in lowered:
                return refined
    return cls


class MiniMaxErrorMapper(ErrorMapper):
    def info_of(self, chunk: Chunk) -> ErrorInfo | None:
        base = chunk.base_resp
        if base is not None and base.status_code != 0:
            return ErrorInfo(base.status_msg, str(base.status_code))
        return error_info(chunk)

    def from_info(self, status: int | None, info: ErrorInfo, wait: float | None) -> RunapiError:
        code = minimax_code(info)
        if code is None:
            return super().from_info(status, info, wait)
        if code in MISCONFIGURED_CODES:
            return misconfigured(f"{self.upstream}: MiniMax {code}: {info.message}")
        cls = error_class(code, info.message)
        if cls is None:
            return super().from_info(status, info, wait)
        if cls is UpstreamError and status is not None and status >= 500:
            # A generic server-error code says less than a 503/504 status does.
            cls = STATUS_ERRORS.get(status, UpstreamError)
        message = CODE_PATTERN.sub("", info.message).strip() or f"MiniMax error {code}"
        return build_error(cls, self.upstream, message, status, wait, {"upstream_code": str(code)})
