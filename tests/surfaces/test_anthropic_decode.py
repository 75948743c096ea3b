"""Anthropic Messages request decoding: every block type, controls, and errors with their `param`."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from runapi.canonical import (
    ImagePart,
    Message,
    ReasoningControl,
    ReasoningPart,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)
from runapi.canonical.codec import Surface
from runapi.errors import InvalidRequest
from runapi.surfaces.anthropic_messages import AnthropicMessagesSurface
from runapi.surfaces.anthropic_messages.decode import IMAGE_IN_TOOL_RESULT

KEY = b"test-signing-key"
surface = AnthropicMessagesSurface(KEY)


def body(**fields: Any) -> bytes:
    base: dict[str, Any] = {"model": "MiniMax-M2.7", "max_tokens": 256}
    base.update(fields)
    return msgspec.json.encode({k: v for k, v in base.items() if v is not None})


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def invalid(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        surface.decode(raw)
    return info.value


def test_is_a_surface() -> None:
    checked: Surface = surface
    assert checked.endpoint == "messages"
    assert checked.id_prefix == "msg_"


def test_minimal_request() -> None:
    decoded = surface.decode(body(messages=[user("Hello")]))
    req = decoded.request
    assert req.model == "MiniMax-M2.7"
    assert decoded.requested_model == "MiniMax-M2.7"
    assert req.max_output_tokens == 256
    assert req.messages == (Message("user", (TextPart("Hello"),)),)
    assert req.system == ()
    assert req.stream is False


def test_system_string_blocks_and_system_turns() -> None:
    raw = body(
        system=[
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Be kind."},
        ],
        messages=[{"role": "system", "content": "Answer in French."}, user("Hi")],
    )
    req = surface.decode(raw).request
    assert req.system == ("Be brief.\n\nBe kind.", "Answer in French.")
    assert req.messages == (Message("user", (TextPart("Hi"),)),)
    assert surface.decode(body(system="S", messages=[user("x")])).request.system == ("S",)


def test_images_base64_and_url() -> None:
    raw = body(
        messages=[
            user(
                [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    {"type": "text", "text": "What is this?"},
                ]
            )
        ]
    )
    parts = surface.decode(raw).request.messages[0].parts
    assert parts == (
        ImagePart(url="data:image/png;base64,iVBOR"),
        ImagePart(url="https://example.com/cat.jpg"),
        TextPart("What is this?"),
    )


def test_tool_use_and_results_in_call_order_before_text() -> None:
    raw = body(
        messages=[
            user("Weather in Paris and Lyon?"),
            assistant(
                [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {"city": "Lyon"}},
                ]
            ),
            user(
                [
                    {"type": "text", "text": "Thanks!"},
                    {"type": "tool_result", "tool_use_id": "call_b", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_a",
                        "content": [{"type": "text", "text": "21C"}, {"type": "text", "text": "sunny"}],
                        "is_error": False,
                    },
                ]
            ),
        ]
    )
    messages = surface.decode(raw).request.messages
    assert messages[1] == Message(
        "assistant",
        (
            TextPart("Checking."),
            ToolCallPart("call_a", "get_weather", '{"city":"Paris"}'),
            ToolCallPart("call_b", "get_weather", '{"city":"Lyon"}'),
        ),
    )
    # Results in the assistant's call order, as one tool turn, then the user's text (§6.4).
    assert messages[2] == Message(
        "tool", (ToolResultPart("call_a", "21C\nsunny"), ToolResultPart("call_b", "18C"))
    )
    assert messages[3] == Message("user", (TextPart("Thanks!"),))
    assert len(messages) == 4


def test_tool_result_error_flag_and_image_placeholder() -> None:
    raw = body(
        messages=[
            user("x"),
            assistant([{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]),
            user(
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "is_error": True,
                        "content": [
                            {"type": "text", "text": "partial"},
                            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                        ],
                    }
                ]
            ),
        ]
    )
    messages = surface.decode(raw).request.messages
    assert messages[-1] == Message(
        "tool", (ToolResultPart("t1", f"partial\n{IMAGE_IN_TOOL_RESULT}", is_error=True),)
    )


def test_thinking_kept_foreign_signature_dropped_redacted_dropped() -> None:
    raw = body(
        messages=[
            user("x"),
            assistant(
                [
                    {"type": "thinking", "thinking": "Need a tool.", "signature": "EqQBforeign"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "ok"},
                ]
            ),
        ]
    )
    assert surface.decode(raw).request.messages[1] == Message(
        "assistant", (ReasoningPart("Need a tool.", None), TextPart("ok"))
    )


def test_thinking_with_our_signature_keeps_it() -> None:
    sig = surface.signer.sign("Need a tool.")
    raw = body(
        messages=[user("x"), assistant([{"type": "thinking", "thinking": "Need a tool.", "signature": sig}])]
    )
    assert surface.decode(raw).request.messages[1].parts == (ReasoningPart("Need a tool.", sig),)
    # The signature covers the text: edited thinking loses it.
    raw = body(
        messages=[user("x"), assistant([{"type": "thinking", "thinking": "Edited.", "signature": sig}])]
    )
    assert surface.decode(raw).request.messages[1].parts == (ReasoningPart("Edited.", None),)


def test_tools_and_tool_choice() -> None:
    tools = [
        {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}},
        {"type": "custom", "name": "noop", "input_schema": {"type": "object", "properties": {}}},
    ]
    cases: list[tuple[dict[str, Any], ToolChoice, bool | None]] = [
        ({"type": "auto"}, ToolChoice("auto"), None),
        ({"type": "any", "disable_parallel_tool_use": True}, ToolChoice("required"), False),
        ({"type": "none"}, ToolChoice("none"), None),
        ({"type": "tool", "name": "get_weather"}, ToolChoice("tool", "get_weather"), None),
    ]
    for choice, expected, parallel in cases:
        req = surface.decode(body(messages=[user("x")], tools=tools, tool_choice=choice)).request
        assert req.tool_choice == expected
        assert req.parallel_tool_calls is parallel
    req = surface.decode(body(messages=[user("x")], tools=tools)).request
    assert req.tools == (
        ToolSpec("get_weather", "Weather", {"type": "object"}),
        ToolSpec("noop", None, {"type": "object", "properties": {}}),
    )
    assert req.tool_choice is None


def test_controls() -> None:
    raw = body(
        messages=[user("x")],
        stop_sequences=["END", ""],
        temperature=0.5,
        top_p=0.9,
        top_k=5,
        stream=True,
        thinking={"type": "enabled", "budget_tokens": 2048},
        output_config={"effort": "high", "format": {"type": "json_schema", "schema": {"type": "object"}}},
        metadata={"user_id": "u-42"},
        callback_url="https://example.com/hook",
        webhook_events_filter=["completed"],
        service_tier="auto",
    )
    decoded = surface.decode(raw)
    req = decoded.request
    assert req.stop == ("END",)
    assert (req.temperature, req.top_p, req.stream, req.user) == (0.5, 0.9, True, "u-42")
    assert req.reasoning == ReasoningControl(enabled=True, effort="high", budget_tokens=2048)
    assert req.response_format == ResponseFormat(type="json_schema", schema={"type": "object"})
    assert decoded.gateway.callback_url == "https://example.com/hook"
    assert decoded.gateway.webhook_events_filter == ("completed",)
    off = surface.decode(body(messages=[user("x")], thinking={"type": "disabled"})).request
    assert off.reasoning == ReasoningControl(enabled=False)
    adaptive = surface.decode(body(messages=[user("x")], thinking={"type": "adaptive"})).request
    assert adaptive.reasoning == ReasoningControl(enabled=True)


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (msgspec.json.encode({"model": "m", "messages": [user("x")]}), "max_tokens"),
        (msgspec.json.encode({"max_tokens": 5, "messages": [user("x")]}), "model"),
        (body(max_tokens=0, messages=[user("x")]), "max_tokens"),
        (body(max_tokens="many", messages=[user("x")]), "max_tokens"),
        (body(messages=[]), "messages"),
        (body(messages=[user([{"type": "document", "source": {}}])]), "messages[0].content[0].type"),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages[0].role"),
        (
            body(messages=[user([{"type": "tool_use", "id": "a", "name": "b", "input": {}}])]),
            "messages[0].content[0].type",
        ),
        (
            body(messages=[user("x"), assistant([{"type": "tool_result", "tool_use_id": "a"}])]),
            "messages[1].content[0].type",
        ),
        (body(messages=[user([{"type": "text"}])]), "messages[0].content[0].text"),
        (
            body(messages=[user("x")], tools=[{"type": "web_search_20250305", "name": "web_search"}]),
            "tools[0]",
        ),
        (body(messages=[user("x")], tool_choice={"type": "tool", "name": "nope"}), "tool_choice.name"),
        (body(messages=[user("x")], tool_choice={"type": "any"}), "tool_choice"),
        (body(messages=[user("x")], thinking={"type": "sometimes"}), "thinking.type"),
        (body(messages=[user("x")], thinking={"type": "enabled"}), "thinking.budget_tokens"),
        (body(messages=[user("x")], temperature=1.5), "temperature"),
        (
            body(
                messages=[
                    {"role": "system", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}
                ]
            ),
            "messages[0].content[0].type",
        ),
    ],
)
def test_invalid_requests_name_the_param(raw: bytes, param: str) -> None:
    error = invalid(raw)
    assert error.param == param
    assert error.status == 400


def test_malformed_json() -> None:
    error = invalid(b"{not json")
    assert error.status == 400


def test_count_tokens_needs_no_max_tokens() -> None:
    raw = msgspec.json.encode(
        {
            "model": "MiniMax-M2.7",
            "system": "S",
            "messages": [user("Hello")],
            "tools": [{"name": "f", "input_schema": {}}],
        }
    )
    req = surface.decode_count_tokens(raw)
    assert req.system == ("S",)
    assert req.max_output_tokens is None
    assert req.tools == (ToolSpec("f", None, {}),)
    assert surface.render_count_tokens(2095) == b'{"input_tokens":2095}'
