"""The simulator through the official OpenAI Python SDK, as gateway users would call MiniMax."""

from __future__ import annotations

import json
from typing import Any, cast

import jsonschema
import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam

from runapi.simulator import count_prompt_tokens

from .helpers import Sim
from .test_chat import WEATHER


def client_for(sim: Sim) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{sim.base_url}/v1", api_key="sk-test", max_retries=0)


def extra(message: Any, name: str) -> Any:
    """A MiniMax extra field on an SDK object (kept by the SDK, but not typed)."""
    return (message.model_extra or {}).get(name)


async def test_non_stream_with_reasoning_split(sim: Sim) -> None:
    messages: list[Any] = [{"role": "user", "content": "Hello\n@sim tokens=6 reasoning=4"}]
    async with client_for(sim) as client:
        completion = await client.chat.completions.create(
            model="MiniMax-M2.7", messages=messages, extra_body={"reasoning_split": True}
        )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop"
    assert len((message.content or "").split()) == 6
    assert len(extra(message, "reasoning_content").split()) == 4
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_prompt_tokens({"messages": messages})
    assert completion.usage.completion_tokens == 10
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 4


async def test_stream_with_usage_and_tools(sim: Sim) -> None:
    async with client_for(sim) as client:
        stream = await client.chat.completions.create(
            model="MiniMax-M2.7",
            messages=[{"role": "user", "content": "Weather?\n@sim tool=get_weather"}],
            tools=[cast(ChatCompletionFunctionToolParam, WEATHER)],
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"reasoning_split": True},
        )
        reasoning, arguments, finish, usage = "", "", None, None
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                reasoning += extra(choice.delta, "reasoning_content") or ""
                for call in choice.delta.tool_calls or []:
                    arguments += (call.function.arguments or "") if call.function else ""
                finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert len(reasoning.split()) == 8
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])
    assert usage is not None
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 8


async def test_sdk_exceptions(sim: Sim) -> None:
    async with client_for(sim) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
        assert "(2013)" in str(bad.value)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(
                model="MiniMax-M2.7", messages=[{"role": "user", "content": "hi\n@sim error=429"}]
            )
        stream = await client.chat.completions.create(
            model="MiniMax-M2.7",
            messages=[{"role": "user", "content": "hi\n@sim error_after=2"}],
            stream=True,
        )
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
