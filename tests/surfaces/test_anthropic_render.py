"""Anthropic Message rendering, errors, rate-limit headers and the models list, checked against
the official SDK's types."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import msgspec
import pytest
from anthropic._error_classes import make_status_error
from anthropic.types import Message as SDKMessage
from anthropic.types import ModelInfo

from runapi.canonical import Completion, FinishReason, Message, ReasoningPart, TextPart, ToolCallPart, Usage
from runapi.canonical.codec import RateLimitView, ResponseMeta
from runapi.catalog.loader import ModelEntry, Prices
from runapi.errors import (
    AuthenticationFailed,
    Conflict,
    InsufficientCredits,
    InternalError,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RunapiError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from runapi.surfaces.anthropic_messages import AnthropicMessagesSurface
from runapi.surfaces.anthropic_messages.headers import rate_limit_headers

surface = AnthropicMessagesSurface(b"test-signing-key")
ULID = "01JZ8Q4M1T6Y3N0X5V2C7B9D8E"


def meta(**kw: Any) -> ResponseMeta:
    fields: dict[str, Any] = {
        "surface_id": f"msg_{ULID}",
        "task_id": f"task_{ULID}",
        "request_id": "req_1",
        "model": "MiniMax-M2.7",
        "created": 1_773_799_200,
        "cost_usd": 0.00042,
    }
    fields.update(kw)
    return ResponseMeta(**fields)


def completion(reason: FinishReason = "tool_calls", **kw: Any) -> Completion:
    return Completion(
        parts=[
            ReasoningPart("The user wants weather."),
            TextPart("Let me check."),
            ToolCallPart("call_function_1", "get_weather", '{"city": "Paris"}'),
        ],
        finish_reason=reason,
        usage=Usage(
            input_tokens=100,
            output_tokens=40,
            cached_input_tokens=30,
            cache_write_tokens=10,
            reasoning_tokens=12,
        ),
        **kw,
    )


def render(c: Completion, m: ResponseMeta | None = None) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.json.decode(surface.render(c, m or meta()))
    return data


def test_message_validates_with_the_sdk() -> None:
    data = render(completion())
    message = SDKMessage.model_validate(data)
    assert message.id == f"msg_{ULID}"
    assert message.model == "MiniMax-M2.7"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    thinking, text, tool = message.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "The user wants weather."
    assert thinking.signature == surface.signer.sign("The user wants weather.")
    assert text.type == "text"
    assert text.text == "Let me check."
    assert tool.type == "tool_use"
    assert tool.id == "call_function_1"
    assert tool.input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    assert message.stop_sequence is None


def test_usage_is_uncached_plus_cache_fields_and_cost() -> None:
    data = render(completion())
    assert data["usage"] == {
        "input_tokens": 60,  # 100 - 30 read - 10 written
        "output_tokens": 40,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": 30,
        "output_tokens_details": {"thinking_tokens": 12},
        "cost": 0.00042,
    }
    usage = SDKMessage.model_validate(data).usage
    assert (
        usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
        == 100
    )


@pytest.mark.parametrize(
    ("reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_stop_reasons(reason: FinishReason, stop_reason: str) -> None:
    c = Completion(parts=[TextPart("x")], finish_reason=reason, usage=Usage(input_tokens=1, output_tokens=1))
    assert SDKMessage.model_validate(render(c)).stop_reason == stop_reason


def test_stop_sequence_and_stop_with_tool_calls() -> None:
    c = Completion(parts=[TextPart("x")], finish_reason="stop_sequence", stop_sequence="END")
    message = SDKMessage.model_validate(render(c))
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")
    # MiniMax sometimes says `stop` with tool calls present: that is `tool_use` (§6.5).
    assert render(completion("stop"))["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [("", {}), ('{"a": [1, 2]}', {"a": [1, 2]}), ('{"a": ', {"_raw": '{"a": '}), ("[1]", {"_raw": "[1]"})],
)
def test_tool_input_is_always_an_object(arguments: str, expected: dict[str, Any]) -> None:
    c = Completion(parts=[ToolCallPart("c1", "f", arguments)], finish_reason="tool_calls")
    assert render(c)["content"][0]["input"] == expected


def test_tool_use_round_trip_through_history() -> None:
    """The rendered reply, sent back as an assistant turn, decodes to the same canonical turn."""
    original = completion()
    content = render(original)["content"]
    raw = msgspec.json.encode(
        {
            "model": "MiniMax-M2.7",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": content}],
        }
    )
    turn = surface.decode(raw).request.messages[1]
    text = "The user wants weather."
    assert turn == Message(
        "assistant",
        (
            ReasoningPart(text, surface.signer.sign(text)),
            TextPart("Let me check."),
            ToolCallPart("call_function_1", "get_weather", '{"city":"Paris"}'),
        ),
    )


def test_signature_from_another_key_is_foreign() -> None:
    other = AnthropicMessagesSurface(b"another-key")
    content = render(completion())["content"]
    raw = msgspec.json.encode(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": content}],
        }
    )
    assert other.decode(raw).request.messages[1].parts[0] == ReasoningPart("The user wants weather.", None)


def test_missing_usage_renders_zeros() -> None:
    message = SDKMessage.model_validate(
        render(Completion(parts=[TextPart("hi")], finish_reason="stop"), meta(cost_usd=None))
    )
    assert (message.usage.input_tokens, message.usage.output_tokens) == (0, 0)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (InvalidRequest("bad", param="max_tokens"), 400, "invalid_request_error"),
        (AuthenticationFailed("no key"), 401, "authentication_error"),
        (InsufficientCredits("broke"), 402, "billing_error"),
        (PermissionDenied("no"), 403, "permission_error"),
        (ModelNotFound("no such model"), 404, "not_found_error"),
        (Conflict("again"), 409, "conflict_error"),
        (PayloadTooLarge("big"), 413, "request_too_large"),
        (RateLimited("slow down", retry_after=3), 429, "rate_limit_error"),
        (UpstreamRateLimited("upstream throttled"), 429, "rate_limit_error"),
        (InternalError("oops"), 500, "api_error"),
        (UpstreamError("upstream 500"), 502, "api_error"),
        (UpstreamTimeout("slow upstream"), 504, "timeout_error"),
        (Overloaded("busy"), 529, "overloaded_error"),
        (UpstreamUnavailable("down"), 529, "overloaded_error"),
    ],
)
def test_error_envelope(error: RunapiError, status: int, error_type: str) -> None:
    got_status, raw, headers = surface.render_error(error, "req_abc")
    assert got_status == status
    data = msgspec.json.decode(raw)
    assert data == {
        "type": "error",
        "error": {"type": error_type, "message": error.message},
        "request_id": "req_abc",
    }
    assert headers["request-id"] == "req_abc"
    # The SDK maps the status to its exception class; check the mapping holds.
    response = httpx2.Response(status, request=httpx2.Request("POST", "http://localhost/v1/messages"))
    exc = make_status_error(error.message, body=data, response=response)
    assert exc.status_code == status
    if status == 529:
        assert isinstance(exc, anthropic.InternalServerError)
        assert type(exc).__name__ == "OverloadedError"


def test_retry_after_on_429_and_no_retry_hint_on_4xx() -> None:
    _, _, headers = surface.render_error(RateLimited("slow", retry_after=2.4), "req_1")
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "2400"
    _, _, headers = surface.render_error(InvalidRequest("bad"), "req_1")
    assert headers["x-should-retry"] == "false"
    assert "retry-after" not in headers


# ---------------------------------------------------------------- rate limits


def test_rate_limit_headers_are_rfc3339() -> None:
    view = RateLimitView(
        requests_limit=60,
        requests_remaining=59,
        requests_reset_s=1.0,
        input_tokens_limit=100_000,
        input_tokens_remaining=90_000,
        input_tokens_reset_s=6.0,
        output_tokens_limit=10_000,
        output_tokens_remaining=2_000,
        output_tokens_reset_s=48.5,
    )
    now = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    headers = rate_limit_headers(view, now=now)
    assert headers["anthropic-ratelimit-requests-limit"] == "60"
    assert headers["anthropic-ratelimit-requests-remaining"] == "59"
    assert headers["anthropic-ratelimit-requests-reset"] == "2026-07-01T12:00:01Z"
    assert headers["anthropic-ratelimit-input-tokens-reset"] == "2026-07-01T12:00:06Z"
    assert headers["anthropic-ratelimit-output-tokens-reset"] == "2026-07-01T12:00:49Z"
    # Output is the tighter bucket (20% left against 90%).
    assert headers["anthropic-ratelimit-tokens-limit"] == "10000"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "2000"
    for name, value in headers.items():
        if name.endswith("-reset"):
            datetime.fromisoformat(value)
    assert set(surface.rate_limit_headers(view)) == set(headers)


# ---------------------------------------------------------------- models


def entry(model_id: str, released: str | None = "2026-03-18", status: str = "active") -> ModelEntry:
    return ModelEntry(
        id=model_id,
        family="minimax",
        upstream="minimax",
        released=released,
        context_window=204_800,
        max_output=131_072,
        speed_class="standard",
        model_class="standard",
        prices=Prices(input=Decimal("0.3"), output=Decimal("1.2")),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        status=status,
    )


def test_models_page_validates_with_the_sdk() -> None:
    entries = [
        entry("MiniMax-M2.7"),
        entry("MiniMax-M2.5", "2026-02-13"),
        entry("Old", status="disabled"),
        entry("X", None),
    ]
    page = msgspec.json.decode(surface.render_models(entries))
    assert page["has_more"] is False
    assert (page["first_id"], page["last_id"]) == ("MiniMax-M2.7", "X")
    infos = [ModelInfo.model_validate(m) for m in page["data"]]
    assert [i.id for i in infos] == ["MiniMax-M2.7", "MiniMax-M2.5", "X"]
    first = infos[0]
    assert first.display_name == "MiniMax M2.7"
    assert first.lifecycle == "active"
    assert first.created_at == datetime(2026, 3, 18, tzinfo=UTC)
    assert (first.max_input_tokens, first.max_tokens) == (204_800, 131_072)
    assert infos[2].created_at == datetime(2026, 1, 1, tzinfo=UTC)  # no release date: effective_from
    one = ModelInfo.model_validate(msgspec.json.decode(surface.render_model(entries[1])))
    assert one.id == "MiniMax-M2.5"


def test_models_pagination() -> None:
    entries = [entry(f"m{i}") for i in range(5)]
    page = msgspec.json.decode(surface.render_models(entries, limit=2))
    assert [m["id"] for m in page["data"]] == ["m0", "m1"]
    assert page["has_more"] is True
    page = msgspec.json.decode(surface.render_models(entries, limit=2, after_id="m1"))
    assert [m["id"] for m in page["data"]] == ["m2", "m3"]
    assert page["has_more"] is True
    page = msgspec.json.decode(surface.render_models(entries, limit=2, after_id="m3"))
    assert [m["id"] for m in page["data"]] == ["m4"]
    assert page["has_more"] is False
    page = msgspec.json.decode(surface.render_models(entries, limit=2, before_id="m4"))
    assert [m["id"] for m in page["data"]] == ["m2", "m3"]
    assert page["has_more"] is True
    page = msgspec.json.decode(surface.render_models(entries, after_id="zzz"))
    assert page == {"data": [], "has_more": False, "first_id": None, "last_id": None}
