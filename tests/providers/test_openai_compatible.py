"""The generic OpenAI-compatible adapter: on the simulator (inline <think>, MiniMax error bodies
read generically) and on a vLLM-shaped upstream (`reasoning` deltas, `stop_reason`, flat errors)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web

from runapi.canonical import Event, Finished, ToolSpec, UsageReport
from runapi.catalog import ModelEntry
from runapi.errors import ContextLengthExceeded, InvalidRequest, UpstreamError, UpstreamRateLimited
from runapi.providers.openai_compatible import openai_compatible_provider
from runapi.providers.openai_wire import ChatCompletionsProvider
from runapi.providers.registry import ProviderRegistry
from runapi.settings import Settings, UpstreamSettings, load_settings
from tests.providers.conftest import ask, collect, drain, fold

CLOCK = ToolSpec(
    name="get_time",
    parameters={"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
)


def generic(upstream: UpstreamSettings) -> ChatCompletionsProvider:
    provider = openai_compatible_provider("vllm", upstream, Settings())
    assert isinstance(provider, ChatCompletionsProvider)
    return provider


@pytest.fixture
async def on_sim(sim_upstream: Callable[..., UpstreamSettings]) -> AsyncIterator[ChatCompletionsProvider]:
    provider = generic(sim_upstream(kind="openai_compatible"))
    await provider.start()
    yield provider
    await provider.close()


def test_registry_builds_both_kinds() -> None:
    settings = load_settings(
        env={"MINIMAX_API_KEY": "k"},
        overrides={"upstreams.vllm": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"}},
    )
    registry = ProviderRegistry.from_settings(settings)
    minimax = registry.get("minimax")
    vllm = registry.get("vllm")
    assert isinstance(minimax, ChatCompletionsProvider)
    assert minimax.client.base_url == "https://api.minimax.io/v1"  # the default when only a key is set
    assert isinstance(vllm, ChatCompletionsProvider)
    assert vllm.client.base_url == "http://127.0.0.1:9/v1"


def test_request_has_no_minimax_extras(on_sim: ChatCompletionsProvider, m27: ModelEntry) -> None:
    body = msgspec.json.decode(on_sim.builder.build(ask("m", "hi", stop=("X",), seed=3), m27))
    assert "reasoning_split" not in body
    assert (body["stop"], body["seed"]) == (["X"], 3)


async def test_inline_reasoning_is_parsed(on_sim: ChatCompletionsProvider, m27: ModelEntry) -> None:
    completion = fold(await collect(on_sim, ask("MiniMax-M2.7", "hi\n@sim tokens=4 reasoning=5"), m27))
    assert (len(completion.reasoning.split()), len(completion.text.split())) == (5, 4)
    assert "<think>" not in completion.text


async def test_think_parsing_can_be_switched_off(
    sim_upstream: Callable[..., UpstreamSettings], m27: ModelEntry
) -> None:
    provider = generic(sim_upstream(kind="openai_compatible", think_tags="never"))
    try:
        completion = fold(await collect(provider, ask("MiniMax-M2.7", "hi\n@sim tokens=4 reasoning=5"), m27))
    finally:
        await provider.close()
    assert completion.reasoning == ""
    assert completion.text.startswith("<think>")


async def test_reasoning_split_when_configured(
    sim_upstream: Callable[..., UpstreamSettings], m27: ModelEntry
) -> None:
    provider = generic(sim_upstream(kind="openai_compatible", reasoning_split=True, think_tags="never"))
    try:
        completion = fold(await collect(provider, ask("MiniMax-M2.7", "hi\n@sim tokens=2 reasoning=3"), m27))
    finally:
        await provider.close()
    assert (len(completion.reasoning.split()), len(completion.text.split())) == (3, 2)


async def test_tool_calls(on_sim: ChatCompletionsProvider, m27: ModelEntry) -> None:
    request = ask("MiniMax-M2.7", "time?\n@sim tool=get_time", tools=(CLOCK,))
    completion = fold(await collect(on_sim, request, m27))
    assert [c.name for c in completion.tool_calls] == ["get_time"]
    assert completion.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("directive", "expected"),
    [("error=429", UpstreamRateLimited), ("error=400", InvalidRequest), ("error=500", UpstreamError)],
)
async def test_errors_by_status(
    on_sim: ChatCompletionsProvider, m27: ModelEntry, directive: str, expected: type[Exception]
) -> None:
    with pytest.raises(expected):
        await collect(on_sim, ask("MiniMax-M2.7", f"hi\n@sim {directive}"), m27)


# ---------------------------------------------------------------- a vLLM-shaped upstream


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + msgspec.json.encode(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def vllm_chunk(delta: dict[str, Any], finish: str | None = None, **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-v1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **choice}],
    }


async def vllm_handler(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    prompt = body["messages"][-1]["content"]
    if prompt == "too long":
        error = {
            "object": "error",
            "message": "This model's maximum context length is 4096 tokens. You requested 9000 tokens.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
        return web.json_response(error, status=400)
    if prompt == "raw tool call":
        # A MiniMax model on vLLM without a tool parser: the call arrives as text, cut anywhere.
        raw = RAW_CALL_TEXT
        cuts = [0, 9, 20, 31, 47, 80, 123, len(raw)]
        payload = sse(
            *(vllm_chunk({"content": raw[a:b]}) for a, b in itertools.pairwise(cuts)),
            vllm_chunk({}, "stop"),
            {"id": "chatcmpl-v1", "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 40}},
        )
    elif prompt == "mid-stream error":
        payload = sse(vllm_chunk({"content": "part"})).replace(
            b"data: [DONE]",
            b'data: {"error":{"message":"engine died","type":"InternalServerError","code":500}}',
        )
    else:
        payload = sse(
            vllm_chunk({"role": "assistant", "content": ""}),
            vllm_chunk({"reasoning": "thinking about it"}),
            vllm_chunk({"content": "The answer"}),
            vllm_chunk({}, "stop", stop_reason="END"),
            {"id": "chatcmpl-v1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5}},
        )
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await response.write(payload)
    await response.write_eof()
    return response


@pytest.fixture
async def vllm() -> AsyncIterator[ChatCompletionsProvider]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", vllm_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    provider = generic(UpstreamSettings(kind="openai_compatible", base_url=f"http://127.0.0.1:{port}/v1"))
    await provider.start()
    yield provider
    await provider.close()
    await runner.cleanup()


async def test_vllm_reasoning_field_and_stop_reason(vllm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    events = await collect(vllm, ask("served-model", "hello", stop=("END",)), m27)
    completion = fold(events)
    assert (completion.reasoning, completion.text) == ("thinking about it", "The answer")
    assert Finished("stop_sequence", stop_sequence="END") in events
    assert isinstance(events[-1], UsageReport)
    assert events[-1].usage.input_tokens == 7


RAW_CALL_TEXT = (
    'Let me check.\n<minimax:tool_call>\n<invoke name="get_time">\n'
    '<parameter name="zone">Europe/Paris</parameter>\n<parameter name="offset">2</parameter>\n'
    "</invoke>\n</minimax:tool_call>\n"
)
TIMED_CLOCK = ToolSpec(
    name="get_time",
    parameters={"type": "object", "properties": {"zone": {"type": "string"}, "offset": {"type": "integer"}}},
)


async def test_raw_minimax_tool_calls_in_text_become_tool_calls(
    vllm: ChatCompletionsProvider, m27: ModelEntry
) -> None:
    events = await collect(vllm, ask("served-model", "raw tool call", tools=(TIMED_CLOCK,)), m27)
    completion = fold(events)
    assert completion.text == "Let me check.\n"
    [call] = completion.tool_calls
    assert call.name == "get_time"
    assert msgspec.json.decode(call.arguments) == {"zone": "Europe/Paris", "offset": 2}
    assert call.id.startswith("call_")
    assert completion.finish_reason == "tool_calls"
    # Without tools in the request the same text is only text.
    plain = fold(await collect(vllm, ask("served-model", "raw tool call"), m27))
    assert (plain.text, plain.tool_calls, plain.finish_reason) == (RAW_CALL_TEXT, [], "stop")


async def test_vllm_context_error(vllm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    with pytest.raises(ContextLengthExceeded):
        await collect(vllm, ask("served-model", "too long"), m27)


async def test_vllm_in_stream_error_after_text(vllm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    seen: list[Event] = []
    with pytest.raises(UpstreamError) as err:
        await drain(vllm, ask("served-model", "mid-stream error"), m27, seen)
    assert "engine died" in err.value.message
    assert fold(seen).text == "part"
