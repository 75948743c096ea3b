"""Canonical request → upstream body, for MiniMax and generic OpenAI-compatible servers (pure)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from runapi.canonical import (
    ChatRequest,
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
from runapi.catalog import ModelEntry
from runapi.errors import InvalidRequest
from runapi.providers.minimax.request import MiniMaxRequestBuilder
from runapi.providers.openai_wire.request import (
    JSON_OBJECT_INSTRUCTION,
    MISSING_TOOL_RESULT,
    RequestBuilder,
    repair_arguments,
)
from tests.providers.conftest import user

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = ToolSpec(name="get_time")


def body(builder: RequestBuilder, request: ChatRequest, model: ModelEntry) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(builder.build(request, model))
    return decoded


def req(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=messages or (user("hi"),), **fields)


MM = MiniMaxRequestBuilder()
GENERIC = RequestBuilder()


def test_minimax_minimal_body(m27: ModelEntry) -> None:
    assert body(MM, req(stream=True), m27) == {
        "model": "MiniMax-M2.7",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": m27.output_cap_for_hold,
        "reasoning_split": True,
    }


def test_generic_minimal_body_sends_no_extras(m27: ModelEntry) -> None:
    assert body(GENERIC, req(stream=True), m27) == {
        "model": "MiniMax-M2.7",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_a_request_for_one_document_asks_upstream_for_one(m27: ModelEntry) -> None:
    """Non-streaming clients: one JSON body upstream too (usage is always in it)."""
    assert body(GENERIC, req(), m27) == {
        "model": "MiniMax-M2.7",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }


def test_system_text_merges_into_one_leading_message(m27: ModelEntry) -> None:
    out = body(MM, req(user("q"), system=("You are terse.", "Answer in French.")), m27)
    assert out["messages"][0] == {"role": "system", "content": "You are terse.\n\nAnswer in French."}
    assert [m["role"] for m in out["messages"]] == ["system", "user"]


def test_assistant_turn_is_rebuilt_with_reasoning_details_and_tool_calls(m27: ModelEntry) -> None:
    assistant = Message(
        role="assistant",
        parts=(
            ReasoningPart("first I think"),
            ToolCallPart(id="call_1", name="get_weather", arguments='{"city":"Paris"}'),
            ReasoningPart("then more"),
            TextPart("Checking."),
        ),
    )
    result = Message(role="tool", parts=(ToolResultPart(tool_call_id="call_1", content='{"temp":21}'),))
    out = body(MM, req(user("weather?"), assistant, result, tools=(WEATHER,)), m27)
    assert out["messages"][1] == {
        "role": "assistant",
        "content": "Checking.",
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "id": "reasoning-text-1",
                "format": "MiniMax-response-v1",
                "index": 0,
                "text": "first I think",
            },
            {
                "type": "reasoning.text",
                "id": "reasoning-text-2",
                "format": "MiniMax-response-v1",
                "index": 1,
                "text": "then more",
            },
        ],
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":21}'}


def test_generic_builder_sends_reasoning_content(m27: ModelEntry) -> None:
    assistant = Message(role="assistant", parts=(ReasoningPart("hmm"), TextPart("ok")))
    out = body(GENERIC, req(user("a"), assistant, user("b")), m27)
    assert out["messages"][1] == {"role": "assistant", "content": "ok", "reasoning_content": "hmm"}


def test_without_reasoning_split_reasoning_goes_back_inline(m27: ModelEntry) -> None:
    builder = MiniMaxRequestBuilder(reasoning_split=False)
    assistant = Message(role="assistant", parts=(ReasoningPart("hmm"), TextPart("ok")))
    out = body(builder, req(user("a"), assistant, user("b")), m27)
    assert out["messages"][1] == {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nok"}
    assert out["reasoning_split"] is False


def test_history_repair(m27: ModelEntry) -> None:
    assistant = Message(
        role="assistant",
        parts=(
            ToolCallPart(id="a", name="get_weather", arguments='{"city": "Par'),  # cut off
            ToolCallPart(id="b", name="get_time", arguments="[1, 2]"),  # JSON, not an object
            ToolCallPart(id="c", name="get_time", arguments=""),
        ),
    )
    results = Message(
        role="tool",
        parts=(
            ToolResultPart(tool_call_id="c", content="noon"),
            ToolResultPart(tool_call_id="zzz", content="answers nothing"),
            ToolResultPart(tool_call_id="a", content="boom", is_error=True),
        ),
    )
    out = body(MM, req(user("go"), assistant, results, user("thanks")), m27)
    messages = out["messages"]
    assert [c["function"]["arguments"] for c in messages[1]["tool_calls"]] == ["{}", "{}", "{}"]
    # Every call answered right after the turn, in call order; the stray result is gone.
    assert messages[2:5] == [
        {"role": "tool", "tool_call_id": "a", "content": "Error: boom"},
        {"role": "tool", "tool_call_id": "b", "content": MISSING_TOOL_RESULT},
        {"role": "tool", "tool_call_id": "c", "content": "noon"},
    ]
    assert messages[5] == {"role": "user", "content": "thanks"}


def test_unanswered_calls_at_the_end_get_error_results(m27: ModelEntry) -> None:
    assistant = Message(role="assistant", parts=(ToolCallPart(id="a", name="get_time", arguments="{}"),))
    out = body(MM, req(user("go"), assistant), m27)
    assert out["messages"][-1] == {"role": "tool", "tool_call_id": "a", "content": MISSING_TOOL_RESULT}


def test_tool_results_inside_a_user_turn_come_first(m27: ModelEntry) -> None:
    """Anthropic-style: tool results and new text in one user turn."""
    assistant = Message(role="assistant", parts=(ToolCallPart(id="a", name="get_time", arguments="{}"),))
    mixed = Message(
        role="user", parts=(ToolResultPart(tool_call_id="a", content="noon"), TextPart("and now?"))
    )
    out = body(MM, req(user("go"), assistant, mixed), m27)
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "a", "content": "noon"},
        {"role": "user", "content": "and now?"},
    ]


def test_orphan_tool_results_are_dropped(m27: ModelEntry) -> None:
    orphan = Message(role="tool", parts=(ToolResultPart(tool_call_id="x", content="?"),))
    out = body(MM, req(user("a"), orphan, user("b")), m27)
    assert [m["role"] for m in out["messages"]] == ["user", "user"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [('{"a":1}', '{"a":1}'), ("{}", "{}"), ("", "{}"), ("null", "{}"), ('"s"', "{}"), ("{bad", "{}")],
)
def test_repair_arguments(arguments: str, expected: str) -> None:
    assert repair_arguments(arguments) == expected


def test_sampling_and_output_cap_are_clamped_for_minimax(m27: ModelEntry) -> None:
    out = body(MM, req(temperature=0.0, top_p=1.7, max_output_tokens=10**9), m27)
    assert (out["temperature"], out["top_p"]) == (0.01, 1.0)
    assert out["max_completion_tokens"] == m27.max_output
    out = body(MM, req(temperature=1.5, top_p=0.5, max_output_tokens=0), m27)
    assert (out["temperature"], out["top_p"], out["max_completion_tokens"]) == (1.0, 0.5, 1)


def test_generic_forwards_sampling_stop_seed_and_max_tokens(m27: ModelEntry) -> None:
    out = body(GENERIC, req(temperature=1.5, stop=("END",), seed=7, max_output_tokens=100), m27)
    assert (out["temperature"], out["stop"], out["seed"], out["max_tokens"]) == (1.5, ["END"], 7, 100)
    assert "max_completion_tokens" not in out


def test_minimax_drops_what_it_ignores(m27: ModelEntry) -> None:
    out = body(
        MM,
        req(stop=("END",), seed=7, user="u1", metadata={"k": "v"}, parallel_tool_calls=False, tools=(CLOCK,)),
        m27,
    )
    for field in ("stop", "seed", "user", "metadata", "parallel_tool_calls"):
        assert field not in out


def test_tools_are_sent_without_strict_and_with_a_schema(m27: ModelEntry) -> None:
    out = body(MM, req(tools=(WEATHER, CLOCK)), m27)
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": WEATHER.parameters,
            },
        },
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert "tool_choice" not in out


@pytest.mark.parametrize(
    ("choice", "on_m2", "on_m3"),
    [
        (ToolChoice("auto"), ("auto", 2), ("auto", 2)),
        (ToolChoice("none"), ("none", 2), ("none", 2)),
        (ToolChoice("required"), ("auto", 2), ("required", 2)),
        (ToolChoice("tool", "get_time"), ("auto", 1), ("required", 1)),
    ],
)
def test_minimax_tool_choice(
    choice: ToolChoice, on_m2: tuple[str, int], on_m3: tuple[str, int], m27: ModelEntry, m3: ModelEntry
) -> None:
    for model, (wire, count) in ((m27, on_m2), (m3, on_m3)):
        out = body(MM, req(tools=(WEATHER, CLOCK), tool_choice=choice), model)
        assert (out["tool_choice"], len(out["tools"])) == (wire, count)
        if count == 1:
            assert out["tools"][0]["function"]["name"] == "get_time"


def test_generic_tool_choice_names_the_function(m27: ModelEntry) -> None:
    out = body(GENERIC, req(tools=(WEATHER, CLOCK), tool_choice=ToolChoice("tool", "get_time")), m27)
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert len(out["tools"]) == 2


def test_tool_choice_naming_an_unknown_tool_is_rejected(m27: ModelEntry) -> None:
    with pytest.raises(InvalidRequest) as err:
        MM.build(req(tools=(WEATHER,), tool_choice=ToolChoice("tool", "nope")), m27)
    assert err.value.param == "tool_choice"


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        (ReasoningControl(enabled=False), {"type": "disabled"}),
        (ReasoningControl(effort="none"), {"type": "disabled"}),
        (ReasoningControl(enabled=True), {"type": "adaptive"}),
        (ReasoningControl(effort="high"), {"type": "adaptive"}),
        (ReasoningControl(), None),
    ],
)
def test_m3_thinking_follows_the_client(control: ReasoningControl, expected: object, m3: ModelEntry) -> None:
    out = body(MM, req(reasoning=control), m3)
    assert out.get("thinking") == expected
    assert "reasoning_effort" not in out


MM_EFFORT = MiniMaxRequestBuilder(forward_reasoning_effort=True)


@pytest.mark.parametrize(
    ("effort", "sent"),
    [("minimal", "low"), ("low", "low"), ("high", "high"), ("xhigh", "xhigh"), ("max", "max"), ("odd", None)],
)
def test_m3_effort_is_forwarded_when_the_upstream_asks(
    effort: str, sent: str | None, m3: ModelEntry, m27: ModelEntry
) -> None:
    out = body(MM_EFFORT, req(reasoning=ReasoningControl(effort=effort)), m3)
    assert (out["thinking"], out.get("reasoning_effort")) == ({"type": "adaptive"}, sent)
    assert "reasoning_effort" not in body(MM_EFFORT, req(reasoning=ReasoningControl(effort=effort)), m27)


def test_effort_none_switches_m3_thinking_off_and_sends_no_effort(m3: ModelEntry) -> None:
    out = body(MM_EFFORT, req(reasoning=ReasoningControl(effort="none")), m3)
    assert (out["thinking"], "reasoning_effort" in out) == ({"type": "disabled"}, False)


def test_m2_thinking_cannot_be_switched(m27: ModelEntry) -> None:
    assert "thinking" not in body(MM, req(reasoning=ReasoningControl(enabled=False)), m27)


def test_generic_reasoning_controls(m27: ModelEntry) -> None:
    out = body(GENERIC, req(reasoning=ReasoningControl(enabled=False)), m27)
    assert out["chat_template_kwargs"] == {"enable_thinking": False}
    out = body(GENERIC, req(reasoning=ReasoningControl(effort="low")), m27)
    assert out["reasoning_effort"] == "low"
    assert "chat_template_kwargs" not in out


def test_images_need_vision(m27: ModelEntry, m3: ModelEntry) -> None:
    picture = Message(
        role="user", parts=(TextPart("what is this?"), ImagePart("data:image/png;base64,AAAA", "low"))
    )
    out = body(MM, req(picture), m3)
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ]
    with pytest.raises(InvalidRequest) as err:
        MM.build(req(picture), m27)
    assert err.value.param == "messages"
    assert err.value.status == 400


def test_response_format_is_native_only_where_declared(m27: ModelEntry, m3: ModelEntry) -> None:
    fmt = ResponseFormat(type="json_schema", name="answer", schema={"type": "object"}, strict=True)
    native = body(MM, req(response_format=fmt), m3)
    assert native["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    prompted = body(MM, req(user("q"), system=("Be brief.",), response_format=fmt), m27)
    assert "response_format" not in prompted
    system = prompted["messages"][0]["content"]
    assert system.startswith("Be brief.\n\n" + JSON_OBJECT_INSTRUCTION)
    assert '{"type":"object"}' in system


def test_json_object_without_system_text_adds_a_system_message(m27: ModelEntry) -> None:
    out = body(MM, req(response_format=ResponseFormat(type="json_object")), m27)
    assert out["messages"][0] == {"role": "system", "content": JSON_OBJECT_INSTRUCTION}


def test_text_response_format_sends_nothing(m3: ModelEntry) -> None:
    out = body(MM, req(response_format=ResponseFormat(type="text")), m3)
    assert "response_format" not in out
    assert out["messages"][0]["role"] == "user"


def test_multiple_text_parts_join_into_one_string(m27: ModelEntry) -> None:
    msg = Message(role="user", parts=(TextPart("line one"), TextPart("line two")))
    assert body(MM, req(msg), m27)["messages"][0]["content"] == "line one\nline two"
