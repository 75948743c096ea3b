"""A tool-use conversation rendered by one surface, continued on the other, decodes to the same
canonical turns (issue 4: conversations move between surfaces with the same model)."""

from __future__ import annotations

from typing import Any

import msgspec

from runapi.canonical import Completion, Message, ReasoningPart, TextPart, ToolCallPart, Usage
from runapi.canonical.codec import ResponseMeta
from runapi.surfaces.anthropic_messages import AnthropicMessagesSurface
from runapi.surfaces.openai_responses import ResponsesSurface

KEY = b"one-key-for-every-surface"
anthropic_surface = AnthropicMessagesSurface(KEY)
responses_surface = ResponsesSurface(KEY)
ULID = "01JZ8Q4M1T6Y3N0X5V2C7B9D8E"

TURN = Completion(
    parts=[
        ReasoningPart("Two cities: call the tool twice."),
        TextPart("Checking both."),
        ToolCallPart("call_function_a", "get_weather", '{"city":"Paris"}'),
        ToolCallPart("call_function_b", "get_weather", '{"city":"Lyon"}'),
    ],
    finish_reason="tool_calls",
    usage=Usage(input_tokens=50, output_tokens=30),
)


def meta(surface_id: str) -> ResponseMeta:
    return ResponseMeta(
        surface_id=surface_id, task_id=f"task_{ULID}", request_id="req", model="MiniMax-M2.7", created=1
    )


def via_anthropic(completion: Completion) -> tuple[Message, ...]:
    content = msgspec.json.decode(anthropic_surface.render(completion, meta(f"msg_{ULID}")))["content"]
    body = {
        "model": "MiniMax-M2.7",
        "max_tokens": 1000,
        "messages": [
            {"role": "user", "content": "Weather in Paris and Lyon?"},
            {"role": "assistant", "content": content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_function_a", "content": "21C"},
                    {"type": "tool_result", "tool_use_id": "call_function_b", "content": "18C"},
                    {"type": "text", "text": "Which is warmer?"},
                ],
            },
        ],
    }
    return anthropic_surface.decode(msgspec.json.encode(body)).request.messages


def via_responses(completion: Completion) -> tuple[Message, ...]:
    output: list[Any] = msgspec.json.decode(responses_surface.render(completion, meta(f"resp_{ULID}")))[
        "output"
    ]
    body = {
        "model": "MiniMax-M2.7",
        "store": False,
        "input": [
            {"role": "user", "content": "Weather in Paris and Lyon?"},
            *output,
            {"type": "function_call_output", "call_id": "call_function_a", "output": "21C"},
            {"type": "function_call_output", "call_id": "call_function_b", "output": "18C"},
            {"role": "user", "content": "Which is warmer?"},
        ],
    }
    return responses_surface.decode(msgspec.json.encode(body)).request.messages


def test_both_surfaces_decode_to_the_same_conversation() -> None:
    from_anthropic = via_anthropic(TURN)
    from_responses = via_responses(TURN)
    assert from_anthropic == from_responses
    assistant = from_anthropic[1]
    text = "Two cities: call the tool twice."
    # The reasoning survives with the gateway's signature, so it goes back upstream on both.
    assert assistant.parts[0] == ReasoningPart(text, anthropic_surface.signer.sign(text))
    assert [m.role for m in from_anthropic] == ["user", "assistant", "tool", "user"]


def test_anthropic_history_continues_on_responses() -> None:
    """Canonical turns decoded from Anthropic history, listed as Responses input items (the
    stored-input shape), decode on Responses to the same turns."""
    turns = via_anthropic(TURN)
    items = responses_surface.input_items(turns, f"resp_{ULID}")
    body = msgspec.json.encode({"model": "MiniMax-M2.7", "input": items})
    assert responses_surface.decode(body).request.messages == turns
