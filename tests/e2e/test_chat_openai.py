"""OpenAI Chat Completions through the real gateway and the real simulator, with the official SDK."""

from __future__ import annotations

import json

import openai
import pytest

from tests.procs import Gateway


def client(gw: Gateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key or gw.api_key, max_retries=0)


def test_non_streaming_completion_with_reasoning_and_usage(gateway: Gateway) -> None:
    resp = client(gateway).chat.completions.create(
        model="MiniMax-M2.7", messages=[{"role": "user", "content": "Say hello\n@sim tokens=5 reasoning=4"}]
    )
    msg = resp.choices[0].message
    assert msg.content
    assert "<think>" not in msg.content
    assert getattr(msg, "reasoning_content", None)
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 9
    assert resp.usage.completion_tokens_details is not None
    assert resp.usage.completion_tokens_details.reasoning_tokens == 4
    assert resp.id.startswith("chatcmpl-")


def test_stream_reasoning_tool_call_and_usage_chunk(gateway: Gateway) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                    "required": ["city", "days"],
                },
            },
        }
    ]
    stream = client(gateway).chat.completions.create(
        model="MiniMax-M2.7",
        messages=[{"role": "user", "content": "Weather?\n@sim tool=get_weather reasoning=6"}],
        tools=tools,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    reasoning, args, names, ids, finish, usage = [], [], [], [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if getattr(delta, "reasoning_content", None):
                reasoning.append(delta.reasoning_content)  # type: ignore[attr-defined]
            for call in delta.tool_calls or []:
                if call.id:
                    ids.append(call.id)
                if call.function and call.function.name:
                    names.append(call.function.name)
                if call.function and call.function.arguments:
                    args.append(call.function.arguments)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert "".join(reasoning)
    assert names == ["get_weather"]
    assert len(ids) == 1
    assert len(args) > 1, "arguments should arrive in several fragments"
    parsed = json.loads("".join(args))
    assert isinstance(parsed["city"], str)
    assert isinstance(parsed["days"], int)
    assert finish == "tool_calls"
    assert usage is not None
    assert usage.completion_tokens > 0


def test_stream_helper_accumulates(gateway: Gateway) -> None:
    with client(gateway).chat.completions.stream(
        model="MiniMax-M2.7", messages=[{"role": "user", "content": "hi\n@sim tokens=7"}]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.role == "assistant"
    assert final.choices[0].message.content


def test_unknown_model_is_404_model_not_found(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(gateway).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.code == "model_not_found"
    assert info.value.request_id


def test_bad_input_names_the_param(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(
            model="MiniMax-M2.7", messages=[{"role": "user", "content": "x"}], temperature=5
        )
    body = info.value.body
    assert isinstance(body, dict)
    assert body["param"] == "temperature"


def test_wrong_key_is_401(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(gateway, key="sk-ra-nope").chat.completions.create(
            model="MiniMax-M2.7", messages=[{"role": "user", "content": "x"}]
        )


def test_revoked_key_is_401(gateway: Gateway) -> None:
    account_id, _ = gateway.new_account("1")
    created = json.loads(gateway.cli("keys", "create", "--account", str(account_id), "--json"))
    key = created["api_key"]
    client(gateway, key).chat.completions.create(
        model="MiniMax-M2.7", messages=[{"role": "user", "content": "hi"}]
    )
    gateway.cli("keys", "revoke", created["key_id"])
    with pytest.raises(openai.AuthenticationError):
        client(gateway, key).chat.completions.create(
            model="MiniMax-M2.7", messages=[{"role": "user", "content": "hi"}]
        )


def test_async_client(gateway: Gateway) -> None:
    import asyncio

    async def main() -> str:
        async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0) as c:
            r = await c.chat.completions.create(
                model="MiniMax-M2.7", messages=[{"role": "user", "content": "hey"}]
            )
            return r.choices[0].message.content or ""

    assert asyncio.run(main())
