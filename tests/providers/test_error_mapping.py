"""Upstream failures → our errors: MiniMax's code table and generic OpenAI-style bodies (pure)."""

from __future__ import annotations

import msgspec
import pytest

from runapi.errors import (
    ContentPolicyViolation,
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    RunapiError,
    UpstreamError,
    UpstreamQuotaExhausted,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from runapi.providers.minimax.errors import MINIMAX_CODES, MiniMaxErrorMapper
from runapi.providers.openai_wire.errors import ErrorMapper, retry_after
from runapi.providers.openai_wire.wire import chunk_decoder

MM = MiniMaxErrorMapper("minimax")
GENERIC = ErrorMapper("vllm")


def no_headers(name: str) -> str | None:
    return None


def minimax_body(message: str, status: int = 400, kind: str = "bad_request_error") -> bytes:
    return msgspec.json.encode(
        {
            "type": "error",
            "error": {"type": kind, "message": message, "http_code": str(status)},
            "request_id": "r",
        }
    )


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "invalid params, unknown model 'MiniMax-X' (2013)", ModelNotFound),
        (400, "invalid params, context window exceeds limit (2013)", ContextLengthExceeded),
        (400, "invalid params, invalid function arguments json string (2013)", InvalidRequest),
        (429, "rate limit exceeded(RPM) (1002)", UpstreamRateLimited),
        (429, "token limit (1039)", UpstreamRateLimited),
        (429, "connection limit (1041)", UpstreamRateLimited),
        (429, "rate growth limit (2045)", UpstreamRateLimited),
        (402, "insufficient balance (1008)", UpstreamQuotaExhausted),
        (429, "usage limit exceeded (2056)", UpstreamQuotaExhausted),
        (403, "your current token plan not support model (2061)", UpstreamQuotaExhausted),
        (408, "request timeout (1001)", UpstreamTimeout),
        (400, "input new_sensitive (1026)", ContentPolicyViolation),
        (400, "output new_sensitive (1027)", ContentPolicyViolation),
        (400, "too many invisible characters (1042)", ContentPolicyViolation),
        (500, "unknown error (1000)", UpstreamError),
        (500, "system error (1033)", UpstreamError),
        (500, "internal error (1024)", UpstreamError),
        (500, "internal service error (1013)", UpstreamError),
    ],
)
def test_minimax_codes(status: int, message: str, expected: type[RunapiError]) -> None:
    error = MM.from_http(status, minimax_body(message, status), no_headers)
    assert type(error) is expected
    assert error.metadata["upstream_code"] == message.rsplit("(", 1)[1].rstrip(")")


@pytest.mark.parametrize(
    "message", ["login fail: Please carry the API secret key (1004)", "invalid api key (2049)"]
)
def test_bad_upstream_key_is_a_502_never_a_401(message: str) -> None:
    error = MM.from_http(401, minimax_body(message, 401, "authorized_error"), no_headers)
    assert type(error) is UpstreamError
    assert error.status == 502
    assert "misconfiguration" in error.message
    assert "secret" not in error.message


def test_client_fault_messages_are_passed_through_without_the_code() -> None:
    error = MM.from_http(400, minimax_body("invalid params, unknown model 'x' (2013)"), no_headers)
    assert error.message == "invalid params, unknown model 'x'"
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")


def test_rate_limit_keeps_retry_after() -> None:
    headers = {"retry-after": "7"}
    error = MM.from_http(429, minimax_body("rate limit exceeded(RPM) (1002)", 429), headers.get)
    assert isinstance(error, UpstreamRateLimited)
    assert (error.status, error.retry_after) == (429, 7.0)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1002, UpstreamRateLimited),
        (1008, UpstreamQuotaExhausted),
        (1027, ContentPolicyViolation),
        (1039, UpstreamRateLimited),
        (2056, UpstreamQuotaExhausted),
        (1004, UpstreamError),
    ],
)
def test_base_resp_on_a_200(code: int, expected: type[RunapiError]) -> None:
    chunk = chunk_decoder.decode(
        msgspec.json.encode({"base_resp": {"status_code": code, "status_msg": "nope"}})
    )
    error = MM.from_payload(chunk)
    assert type(error) is expected


def test_ok_chunks_are_not_errors() -> None:
    chunk = chunk_decoder.decode(b'{"id":"x","choices":[],"base_resp":{"status_code":0,"status_msg":""}}')
    assert MM.from_payload(chunk) is None
    assert GENERIC.from_payload(chunk) is None


def test_in_stream_error_frame() -> None:
    frame = (
        b'{"type":"error","error":{"type":"api_error","message":"unknown error (1000)","http_code":"500"},'
        b'"request_id":"t","base_resp":{"status_code":1000,"status_msg":"unknown error"}}'
    )
    error = MM.from_payload(chunk_decoder.decode(frame))
    assert type(error) is UpstreamError
    assert error.metadata["upstream_code"] == "1000"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, ModelNotFound),
        (408, UpstreamTimeout),
        (413, PayloadTooLarge),
        (422, InvalidRequest),
        (429, UpstreamRateLimited),
        (500, UpstreamError),
        (502, UpstreamError),
        (503, UpstreamUnavailable),
        (504, UpstreamTimeout),
        (529, UpstreamUnavailable),
        (418, InvalidRequest),
        (599, UpstreamError),
    ],
)
def test_status_without_a_code(status: int, expected: type[RunapiError]) -> None:
    html = b"<html><center><h1>Bad Gateway</h1></center></html>"
    for mapper in (MM, GENERIC):
        assert type(mapper.from_http(status, html, no_headers)) is expected


def test_table_covers_the_documented_codes() -> None:
    documented = {
        1000,
        1001,
        1002,
        1008,
        1013,
        1024,
        1026,
        1027,
        1033,
        1039,
        1041,
        1042,
        2013,
        2045,
        2056,
        2061,
    }
    assert documented <= set(MINIMAX_CODES)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"error":{"message":"too long","type":"invalid_request_error",'
            b'"code":"context_length_exceeded"}}',
            ContextLengthExceeded,
        ),
        (
            b'{"object":"error","message":"This model\'s maximum context length is 4096 tokens.",'
            b'"type":"BadRequestError","code":400}',
            ContextLengthExceeded,
        ),
        (
            b'{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","code":404}}',
            InvalidRequest,
        ),
        (b'{"error":"plain string error"}', InvalidRequest),
    ],
)
def test_generic_bodies(body: bytes, expected: type[RunapiError]) -> None:
    assert type(GENERIC.from_http(400, body, no_headers)) is expected


def test_generic_401_is_misconfiguration() -> None:
    error = GENERIC.from_http(401, b'{"error":{"message":"bad key"}}', no_headers)
    assert (type(error), error.status, error.code) == (UpstreamError, 502, "upstream_misconfigured")


def test_retry_after_headers() -> None:
    assert retry_after({"retry-after-ms": "1500"}.get) == 1.5
    assert retry_after({"retry-after": "3"}.get) == 3.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}.get) is None
    assert retry_after(no_headers) is None
