"""OpenAI Responses through the real gateway and simulator, with the official `openai` SDK."""

from __future__ import annotations

import json

import openai
import pytest

from tests.procs import Gateway

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=gw.api_key, max_retries=0)


def test_create_text_with_reasoning(gateway: Gateway) -> None:
    resp = client(gateway).responses.create(
        model="MiniMax-M2.7", input="Hello there\n@sim tokens=6 reasoning=3", instructions="Be brief."
    )
    assert resp.status == "completed"
    assert resp.output_text
    kinds = [item.type for item in resp.output]
    assert kinds[0] == "reasoning"
    assert "message" in kinds
    assert resp.usage is not None
    assert resp.usage.output_tokens == 9
    assert resp.id.startswith("resp_")


def test_stream_events(gateway: Gateway) -> None:
    with client(gateway).responses.stream(
        model="MiniMax-M2.7", input="Stream\n@sim tokens=10 reasoning=2"
    ) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert final.output_text


def test_function_call_round_trip(gateway: Gateway) -> None:
    c = client(gateway)
    first = c.responses.create(
        model="MiniMax-M2.7",
        input="Weather in Oslo?\n@sim tool=get_weather",
        tools=[WEATHER],  # type: ignore[list-item]
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert json.loads(call.arguments)["city"]
    history = [{"role": "user", "content": "Weather in Oslo?\n@sim tool=get_weather"}]
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "5C, rain"})
    second = c.responses.create(model="MiniMax-M2.7", input=history, tools=[WEATHER])  # type: ignore[arg-type,list-item]
    assert second.output_text


def test_previous_response_id_with_store(gateway: Gateway) -> None:
    c = client(gateway)
    first = c.responses.create(model="MiniMax-M2.7", input="Remember: blue.\n@sim tokens=3", store=True)
    second = c.responses.create(
        model="MiniMax-M2.7", input="What colour?\n@sim tokens=3", previous_response_id=first.id, store=True
    )
    assert second.status == "completed"
    items = c.responses.input_items.list(second.id)
    texts = json.dumps([i.model_dump() for i in items.data])
    assert "Remember: blue." in texts
    assert "What colour?" in texts


def test_previous_response_without_store_is_400(gateway: Gateway) -> None:
    c = client(gateway)
    first = c.responses.create(model="MiniMax-M2.7", input="hi\n@sim tokens=2")
    with pytest.raises(openai.BadRequestError) as info:
        c.responses.create(model="MiniMax-M2.7", input="again", previous_response_id=first.id)
    assert info.value.param == "previous_response_id"  # type: ignore[attr-defined]


def test_retrieve_and_delete(gateway: Gateway) -> None:
    c = client(gateway)
    created = c.responses.create(model="MiniMax-M2.7", input="keep me\n@sim tokens=4")
    fetched = c.responses.retrieve(created.id)
    assert fetched.id == created.id
    assert fetched.output_text == created.output_text
    c.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.input_items.list(created.id)


def test_input_tokens(gateway: Gateway) -> None:
    counted = client(gateway).responses.input_tokens.count(model="MiniMax-M2.7", input="count these tokens")
    assert counted.input_tokens > 0
