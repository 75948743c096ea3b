"""Responses request decoding: every input item type, controls, and errors with their `param`."""

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
from runapi.surfaces.openai_responses import ResponsesSurface
from runapi.surfaces.openai_responses.sealed_reasoning import seal

surface = ResponsesSurface(b"test-signing-key")


def body(**fields: Any) -> bytes:
    base: dict[str, Any] = {"model": "MiniMax-M2.7"}
    base.update(fields)
    return msgspec.json.encode(base)


def invalid(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        surface.decode(raw)
    return info.value


def test_is_a_surface() -> None:
    checked: Surface = surface
    assert (checked.endpoint, checked.id_prefix) == ("responses", "resp_")


def test_string_input_and_instructions() -> None:
    decoded = surface.decode(body(input="Hello", instructions="Be brief."))
    assert decoded.request.messages == (Message("user", (TextPart("Hello"),)),)
    assert decoded.request.system == ("Be brief.",)
    assert decoded.requested_model == "MiniMax-M2.7"
    assert decoded.gateway.store_input is False  # our default, unlike OpenAI's (contract §3.2)


def test_every_item_type() -> None:
    sealed = seal("Need the weather tool.", surface.signer)
    items = [
        {"role": "developer", "content": "Answer in French."},
        {"role": "system", "content": [{"type": "input_text", "text": "No emojis."}]},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather in Paris?"},
                {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": sealed},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_2", "output": "12:00"},
        {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": [{"type": "input_text", "text": "21C"}],
        },
        {"role": "user", "content": "And Lyon?"},
        {"role": "user", "content": "Also Nice."},
    ]
    req = surface.decode(body(input=items)).request
    assert req.system == ("Answer in French.", "No emojis.")
    sig = surface.signer.sign("Need the weather tool.")
    assert req.messages == (
        Message("user", (TextPart("Weather in Paris?"), ImagePart("https://example.com/a.png", "low"))),
        Message(
            "assistant",
            (
                ReasoningPart("Need the weather tool.", sig),
                TextPart("Checking."),
                ToolCallPart("call_1", "get_weather", '{"city":"Paris"}'),
                ToolCallPart("call_2", "get_time", "{}"),
            ),
        ),
        # Results in the assistant's call order (§6.4).
        Message("tool", (ToolResultPart("call_1", "21C"), ToolResultPart("call_2", "12:00"))),
        Message("user", (TextPart("And Lyon?"),)),
        Message("user", (TextPart("Also Nice."),)),
    )


def test_foreign_reasoning_falls_back_to_visible_text() -> None:
    items = [
        {"role": "user", "content": "x"},
        {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Summary."}],
            "content": [{"type": "reasoning_text", "text": "Raw thoughts."}],
            "encrypted_content": "gAAAAB-openai-opaque",
        },
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Only a summary."}]},
        {"type": "reasoning", "summary": [], "encrypted_content": "bm90IG91cnM="},  # no text at all: dropped
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
    ]
    req = surface.decode(body(input=items)).request
    assert req.messages[1] == Message(
        "assistant", (ReasoningPart("Raw thoughts."), ReasoningPart("Only a summary."), TextPart("No."))
    )


def test_sealed_reasoning_from_another_key_is_not_trusted() -> None:
    other = ResponsesSurface(b"other-key")
    items = [
        {"role": "user", "content": "x"},
        {
            "type": "reasoning",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "T"}],
            "encrypted_content": seal("T", other.signer),
        },
    ]
    assert surface.decode(body(input=items)).request.messages[1] == Message(
        "assistant", (ReasoningPart("T"),)
    )


def test_tools_choice_and_controls() -> None:
    raw = body(
        input="x",
        tools=[
            {
                "type": "function",
                "name": "get_weather",
                "description": "W",
                "parameters": {"type": "object"},
                "strict": True,
            }
        ],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        max_output_tokens=500,
        temperature=1.3,
        top_p=0.8,
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        reasoning={"effort": "high", "summary": "auto"},
        stream=True,
        store=True,
        background=True,
        previous_response_id="resp_prev",
        metadata={"k": "v"},
        safety_identifier="user-9",
        include=["reasoning.encrypted_content"],
        callback_url="https://example.com/hook",
        webhook_events_filter=["start", "completed"],
    )
    decoded = surface.decode(raw)
    req = decoded.request
    assert req.tools == (ToolSpec("get_weather", "W", {"type": "object"}),)
    assert req.tool_choice == ToolChoice("tool", "get_weather")
    assert req.parallel_tool_calls is False
    assert (req.max_output_tokens, req.temperature, req.top_p, req.stream) == (500, 1.3, 0.8, True)
    assert req.response_format == ResponseFormat("json_schema", "out", {"type": "object"}, True)
    assert req.reasoning == ReasoningControl(enabled=True, effort="high")
    assert (req.metadata, req.user) == ({"k": "v"}, "user-9")
    gw = decoded.gateway
    assert (gw.store_input, gw.background, gw.previous_response_id) == (True, True, "resp_prev")
    assert (gw.callback_url, gw.webhook_events_filter) == ("https://example.com/hook", ("start", "completed"))
    assert surface.decode(
        body(input="x", reasoning={"effort": "none"})
    ).request.reasoning == ReasoningControl(enabled=False, effort="none")
    assert surface.decode(
        body(input="x", text={"format": {"type": "json_object"}})
    ).request.response_format == (ResponseFormat("json_object"))
    for mode in ("auto", "none"):
        assert surface.decode(body(input="x", tool_choice=mode)).request.tool_choice == ToolChoice(mode)


def test_previous_response_id_allows_empty_input() -> None:
    decoded = surface.decode(body(previous_response_id="resp_1"))
    assert decoded.request.messages == ()


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (msgspec.json.encode({"input": "x"}), "model"),
        (body(), "input"),
        (body(input=[{"type": "message", "role": "user"}]), "input[0].content"),
        (
            body(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]),
            "input[0].content[0].type",
        ),
        (
            body(input=[{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]),
            "input[0].content[0].image_url",
        ),
        (body(input=[{"role": "user", "content": [{"type": "input_audio"}]}]), "input[0].content[0].type"),
        (body(input=[{"role": "robot", "content": "x"}]), "input[0].role"),
        (body(input=["x", {"role": "user", "content": "y"}]), "input[0]"),
        (
            body(input=[{"role": "user", "content": "x"}, {"type": "function_call", "name": "f"}]),
            "input[1].call_id",
        ),
        (body(input=[{"type": "item_reference", "id": "msg_1"}]), "input[0].type"),
        (body(input=[{"type": "computer_call", "id": "c"}]), "input[0].type"),
        (
            body(input=[{"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]),
            "input[0].content[0].type",
        ),
        (body(input="x", tools=[{"type": "web_search"}]), "tools[0].type"),
        (body(input="x", tools=[{"type": "function"}]), "tools[0].name"),
        (body(input="x", tool_choice="sometimes"), "tool_choice"),
        (body(input="x", tool_choice="required"), "tool_choice"),
        (body(input="x", tool_choice={"type": "function", "name": "nope"}), "tool_choice"),
        (body(input="x", text={"format": {"type": "json_schema", "name": "x"}}), "text.format.schema"),
        (body(input="x", text={"format": {"type": "yaml"}}), "text.format.type"),
        (body(input="x", temperature=2.5), "temperature"),
        (body(input="x", max_output_tokens=0), "max_output_tokens"),
        (body(input=5), "input"),
    ],
)
def test_invalid_requests_name_the_param(raw: bytes, param: str) -> None:
    error = invalid(raw)
    assert error.param == param
    assert error.status == 400


def test_input_tokens_body() -> None:
    req = surface.decode_input_tokens(msgspec.json.encode({"input": "How many?", "instructions": "S"}))
    assert req.messages == (Message("user", (TextPart("How many?"),)),)
    assert req.system == ("S",)
    assert msgspec.json.decode(surface.render_input_tokens(12)) == {
        "object": "response.input_tokens",
        "input_tokens": 12,
    }
