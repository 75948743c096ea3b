"""Anthropic Messages through the real gateway and simulator, with the official `anthropic` SDK."""

from __future__ import annotations

import anthropic
import pytest

from tests.procs import Gateway, http_json

WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def client(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=gw.api_key, max_retries=0)


def test_create_text_with_thinking(gateway: Gateway) -> None:
    msg = client(gateway).messages.create(
        model="MiniMax-M2.7",
        max_tokens=256,
        messages=[{"role": "user", "content": "Hello\n@sim tokens=6 reasoning=5"}],
    )
    kinds = [b.type for b in msg.content]
    assert kinds[0] == "thinking"
    assert "text" in kinds
    thinking = msg.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking
    assert thinking.signature
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 11
    assert msg.id.startswith("msg_")


def test_stream_and_final_message(gateway: Gateway) -> None:
    with client(gateway).messages.stream(
        model="MiniMax-M2.7",
        max_tokens=256,
        messages=[{"role": "user", "content": "Stream please\n@sim tokens=12 reasoning=4"}],
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts)
    assert [b.type for b in final.content][:2] == ["thinking", "text"]
    assert final.usage.output_tokens == 16


def test_tool_use_round_trip(gateway: Gateway) -> None:
    c = client(gateway)
    first = c.messages.create(
        model="MiniMax-M2.7",
        max_tokens=512,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Paris?\n@sim tool=get_weather"}],
    )
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert isinstance(call.input, dict)
    assert isinstance(call.input["city"], str)
    second = c.messages.create(
        model="MiniMax-M2.7",
        max_tokens=512,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather in Paris?\n@sim tool=get_weather"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},  # type: ignore[misc]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21C sunny"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert any(b.type == "text" for b in second.content)


def test_count_tokens(gateway: Gateway) -> None:
    counted = client(gateway).messages.count_tokens(
        model="MiniMax-M2.7", messages=[{"role": "user", "content": "How many tokens is this?"}]
    )
    assert counted.input_tokens > 0


def test_models_list_in_anthropic_shape(gateway: Gateway) -> None:
    page = client(gateway).models.list()
    ids = [m.id for m in page.data]
    assert "MiniMax-M2.7" in ids
    assert "MiniMax-M3" in ids


def test_unknown_model_is_not_found(gateway: Gateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client(gateway).messages.create(
            model="nope", max_tokens=16, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_missing_max_tokens_is_400_with_param(gateway: Gateway) -> None:
    status, headers, body = http_json(
        "POST",
        gateway.url + "/v1/messages",
        {"model": "MiniMax-M2.7", "messages": [{"role": "user", "content": "x"}]},
        {"x-api-key": gateway.api_key, "anthropic-version": "2023-06-01"},
    )
    assert status == 400
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    assert headers.get("request-id")
    assert body["request_id"] == headers["request-id"]
