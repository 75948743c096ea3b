"""The MiniMax adapter against the real simulator: every behaviour over the wire, through both
HTTP clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest

from runapi.canonical import (
    ChatRequest,
    Event,
    Finished,
    ImagePart,
    Message,
    ReasoningControl,
    ReasoningDelta,
    TextDelta,
    TextPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    UpstreamInfo,
    UsageReport,
)
from runapi.catalog import ModelEntry
from runapi.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    RunapiError,
    UpstreamError,
    UpstreamQuotaExhausted,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from runapi.providers.http import AiohttpUpstreamClient, PooledHttp1Client
from runapi.providers.minimax import minimax_provider
from runapi.providers.openai_wire import ChatCompletionsProvider
from runapi.settings import Settings, UpstreamSettings
from runapi.simulator import count_prompt_tokens
from tests.providers.conftest import TapProxy, ask, collect, drain, fold, user

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = ToolSpec(
    name="get_time",
    parameters={"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
)


def build(upstream: UpstreamSettings, kind: str = "pool") -> ChatCompletionsProvider:
    provider = minimax_provider("minimax", upstream, Settings())
    assert isinstance(provider, ChatCompletionsProvider)
    assert isinstance(provider.client, PooledHttp1Client)  # http:// → the lean pool
    if kind == "aiohttp":
        provider.client = AiohttpUpstreamClient(
            upstream.base_url or "",
            connect_timeout=upstream.connect_timeout,
            read_timeout=upstream.read_timeout,
            max_connections=upstream.max_connections,
            default_headers={"authorization": f"Bearer {upstream.api_key}"},
        )
    return provider


@pytest.fixture(params=["pool", "aiohttp"])
async def mm(
    request: pytest.FixtureRequest, sim_upstream: Callable[..., UpstreamSettings]
) -> AsyncIterator[ChatCompletionsProvider]:
    provider = build(sim_upstream(), request.param)
    await provider.start()
    yield provider
    await provider.close()


async def test_text_with_split_reasoning_and_exact_usage(
    mm: ChatCompletionsProvider, m27: ModelEntry
) -> None:
    request = ask("MiniMax-M2.7", "Say hello.\n@sim tokens=5 reasoning=3")
    events = await collect(mm, request, m27)
    assert isinstance(events[0], UpstreamInfo)
    assert events[0].upstream_id
    completion = fold(events)
    assert len(completion.reasoning.split()) == 3
    assert len(completion.text.split()) == 5
    assert "<think>" not in completion.text
    assert completion.finish_reason == "stop"
    assert isinstance(events[-1], UsageReport)
    usage = events[-1].usage
    body = msgspec.json.decode(mm.builder.build(request, m27))
    assert usage.input_tokens == count_prompt_tokens(body)
    assert (usage.output_tokens, usage.reasoning_tokens) == (8, 3)
    # Reasoning strictly before text, one Finished, usage last.
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("Finished") == 1
    assert kinds.index("TextDelta") > max(i for i, k in enumerate(kinds) if k == "ReasoningDelta")


async def test_cached_tokens(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    events = await collect(mm, ask("MiniMax-M2.7", "hi\n@sim tokens=2 cached=6"), m27)
    assert fold(events).usage is not None
    assert fold(events).usage.cached_input_tokens == 6  # type: ignore[union-attr]


@pytest.mark.parametrize("tag_split", [0, 1, 3, 8, 10, 11])
async def test_inline_reasoning_is_split_off(
    sim_upstream: Callable[..., UpstreamSettings], m27: ModelEntry, tag_split: int
) -> None:
    provider = build(sim_upstream(reasoning_split=False))
    try:
        prompt = f"hi\n@sim tokens=4 reasoning=6 chunk_tokens=1 tag_split={tag_split}"
        completion = fold(await collect(provider, ask("MiniMax-M2.7", prompt), m27))
    finally:
        await provider.close()
    assert len(completion.reasoning.split()) == 6
    assert len(completion.text.split()) == 4
    assert "think>" not in completion.text + completion.reasoning
    assert not completion.text.startswith("\n")


async def test_tool_call_assembled_from_fragments(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    request = ask("MiniMax-M2.7", "Weather in Paris?\n@sim tool=get_weather", tools=(WEATHER,))
    events = await collect(mm, request, m27)
    completion = fold(events)
    assert completion.finish_reason == "tool_calls"
    [call] = completion.tool_calls
    assert call.name == "get_weather"
    assert call.id.startswith("call_function_")
    assert isinstance(msgspec.json.decode(call.arguments)["city"], str)
    assert sum(1 for e in events if type(e).__name__ == "ToolCallDelta") >= 2  # really fragmented


async def test_parallel_tool_calls_and_the_next_turn(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    first = ask("MiniMax-M2.7", "Both please.\n@sim tool=get_weather,get_time", tools=(WEATHER, CLOCK))
    completion = fold(await collect(mm, first, m27))
    assert [c.name for c in completion.tool_calls] == ["get_weather", "get_time"]
    assert completion.reasoning
    # Send the whole turn back (reasoning included) with the results: the simulator checks the
    # history as strictly as MiniMax does, so this fails on any mapping mistake.
    assistant = Message(role="assistant", parts=tuple(completion.parts))
    results = Message(
        role="tool",
        parts=tuple(ToolResultPart(tool_call_id=c.id, content='{"ok":true}') for c in completion.tool_calls),
    )
    second = first.with_changes(messages=(*first.messages, assistant, results), system=("One.", "Two."))
    follow_up = fold(await collect(mm, second, m27))
    assert follow_up.finish_reason == "stop"
    assert follow_up.text
    assert not follow_up.tool_calls


async def test_history_repair_passes_the_strict_validator(
    mm: ChatCompletionsProvider, m27: ModelEntry
) -> None:
    from runapi.canonical import ToolCallPart

    broken = (
        user("go"),
        Message(
            role="assistant",
            parts=(
                ToolCallPart(id="c1", name="get_weather", arguments='{"city": "Par'),
                ToolCallPart(id="c2", name="get_time", arguments="{}"),
            ),
        ),
        Message(role="tool", parts=(ToolResultPart(tool_call_id="nope", content="x"),)),
        user("and?\n@sim tokens=3"),
    )
    request = ChatRequest(model="MiniMax-M2.7", messages=broken, tools=(WEATHER, CLOCK), stream=True)
    assert len(fold(await collect(mm, request, m27)).text.split()) == 3


async def test_missing_done_ends_cleanly(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    events = await collect(mm, ask("MiniMax-M2.7", "hi\n@sim tokens=3 no_done=1"), m27)
    assert isinstance(events[-1], UsageReport)
    assert events[-2] == Finished("stop")


@pytest.mark.parametrize(
    ("directive", "expected", "status"),
    [
        ("error=500", UpstreamError, 502),
        ("error=502", UpstreamError, 502),
        ("error=503", UpstreamUnavailable, 503),
        ("error=529", UpstreamUnavailable, 503),
        ("error=504", UpstreamTimeout, 504),
        ("error=408", UpstreamTimeout, 504),
        ("error=429", UpstreamRateLimited, 429),
        ("error=400", InvalidRequest, 400),
        ("error=401", UpstreamError, 502),
        ("error=403", UpstreamQuotaExhausted, 503),
        ("error=base_resp:1008", UpstreamQuotaExhausted, 503),
        ("error=base_resp:2056", UpstreamQuotaExhausted, 503),
        ("error=base_resp:1002", UpstreamRateLimited, 429),
        ("error=base_resp:1027", InvalidRequest, 400),
    ],
)
async def test_error_directives(
    mm: ChatCompletionsProvider, m27: ModelEntry, directive: str, expected: type[RunapiError], status: int
) -> None:
    with pytest.raises(expected) as err:
        await collect(mm, ask("MiniMax-M2.7", f"hi\n@sim {directive}"), m27)
    assert err.value.status == status


async def test_retry_after_is_kept(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    with pytest.raises(UpstreamRateLimited) as err:
        await collect(mm, ask("MiniMax-M2.7", "hi\n@sim error=429 retry_after=9"), m27)
    assert err.value.retry_after == 9.0


async def test_disconnect_mid_stream(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    seen: list[Event] = []
    with pytest.raises(UpstreamError) as err:
        await drain(mm, ask("MiniMax-M2.7", "hi\n@sim tokens=10 disconnect_after=3"), m27, seen)
    assert err.value.code == "upstream_disconnected"
    assert len(fold(seen).text.split()) == 3


async def test_in_stream_error(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    seen: list[Event] = []
    request = ask("MiniMax-M2.7", "hi\n@sim tokens=10 error_after=2 error_code=1033")
    with pytest.raises(UpstreamError) as err:
        await drain(mm, request, m27, seen)
    assert err.value.metadata["upstream_code"] == "1033"
    assert len(fold(seen).text.split()) == 2


async def test_unknown_model_and_context_overflow(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    ghost = msgspec.structs.replace(m27, upstream_model="MiniMax-Ghost")
    with pytest.raises(ModelNotFound):
        await collect(mm, ask("MiniMax-Ghost", "hi"), ghost)
    huge = "." * 210_000  # one token per character, under the body-size limit
    with pytest.raises(ContextLengthExceeded):
        await collect(mm, ask("MiniMax-M2.7", huge), m27)


async def test_m3_thinking_off_and_images(
    mm: ChatCompletionsProvider, m3: ModelEntry, m27: ModelEntry
) -> None:
    off = ask("MiniMax-M3", "hi\n@sim tokens=3", reasoning=ReasoningControl(enabled=False))
    completion = fold(await collect(mm, off, m3))
    assert (completion.reasoning, len(completion.text.split())) == ("", 3)
    picture = Message(role="user", parts=(ImagePart("data:image/png;base64,iVBORw0KGgo="), TextPart("what?")))
    seen = ChatRequest(model="MiniMax-M3", messages=(picture,), stream=True)
    assert fold(await collect(mm, seen, m3)).text
    with pytest.raises(InvalidRequest):
        await collect(mm, seen, m27)


async def test_m3_takes_a_forwarded_effort(
    sim_upstream: Callable[..., UpstreamSettings], m3: ModelEntry
) -> None:
    provider = build(sim_upstream(forward_reasoning_effort=True))
    await provider.start()
    try:
        for effort in ("minimal", "high", "max"):
            request = ask(
                "MiniMax-M3", "hi\n@sim tokens=3 reasoning=2", reasoning=ReasoningControl(effort=effort)
            )
            completion = fold(await collect(provider, request, m3))
            assert (completion.reasoning != "", len(completion.text.split())) == (True, 3)
    finally:
        await provider.close()


async def test_m3_required_tool_choice(mm: ChatCompletionsProvider, m3: ModelEntry) -> None:
    request = ask(
        "MiniMax-M3",
        "time?\n@sim tool=get_time",
        tools=(WEATHER, CLOCK),
        tool_choice=ToolChoice("tool", "get_time"),
    )
    assert [c.name for c in fold(await collect(mm, request, m3)).tool_calls] == ["get_time"]


async def test_stop_sequences_are_enforced_by_the_gateway(
    mm: ChatCompletionsProvider, m27: ModelEntry
) -> None:
    base = ask("MiniMax-M2.7", "hi\n@sim tokens=12 chunk_tokens=2")
    words = fold(await collect(mm, base, m27)).text.split()
    stop = " " + words[5]
    events = await collect(mm, base.with_changes(stop=(stop,)), m27)
    completion = fold(events)
    full = " ".join(words)
    assert completion.text == full[: full.index(stop)]
    assert (completion.finish_reason, completion.stop_sequence) == ("stop_sequence", stop)
    assert isinstance(events[-1], UsageReport)  # the rest was still read for billing


async def test_length_finish(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    completion = fold(await collect(mm, ask("MiniMax-M2.7", "hi\n@sim tokens=50", max_output_tokens=10), m27))
    assert completion.finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.output_tokens == 10


async def test_content_filter_finish(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    completion = fold(await collect(mm, ask("MiniMax-M2.7", "hi\n@sim tokens=8 finish=content_filter"), m27))
    assert completion.finish_reason == "content_filter"


@pytest.mark.parametrize("kind", ["pool", "aiohttp"])
async def test_early_close_aborts_the_upstream_request(
    tap: TapProxy, sim_upstream: Callable[..., UpstreamSettings], m27: ModelEntry, kind: str
) -> None:
    provider = build(sim_upstream(base_url=f"http://127.0.0.1:{tap.port}/v1", max_connections=1), kind)
    await provider.start()
    try:
        slow = ask("MiniMax-M2.7", "hi\n@sim tokens=400 reasoning=0 tps=20 chunk_tokens=1 ttft_ms=0")
        stream = provider.stream(slow, m27)
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        await stream.aclose()  # type: ignore[attr-defined]
        # The gateway side of the upstream connection closed long before the 20 s stream ended.
        await asyncio.wait_for(tap.closed_by_client.wait(), 10)
        # And the pool is usable at once: with one connection, a held slot would block this.
        quick = ask("MiniMax-M2.7", "hi\n@sim tokens=2")
        assert fold(await asyncio.wait_for(collect(provider, quick, m27), 10)).text
        assert tap.opened == 2
    finally:
        await provider.close()


async def test_connection_refused_is_unavailable(m27: ModelEntry) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = build(UpstreamSettings(kind="minimax", base_url=f"http://127.0.0.1:{port}/v1", api_key="k"))
    try:
        with pytest.raises(UpstreamUnavailable):
            await collect(provider, ask("MiniMax-M2.7", "hi"), m27)
    finally:
        await provider.close()


async def test_reasoning_is_never_counted_twice(mm: ChatCompletionsProvider, m27: ModelEntry) -> None:
    events = await collect(mm, ask("MiniMax-M2.7", "hi\n@sim tokens=1 reasoning=7"), m27)
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert len(reasoning.split()) == 7


@pytest.mark.parametrize("kind", ["pool", "aiohttp"])
@pytest.mark.parametrize("directive", ["tokens=3", "tokens=3 no_done=1", "tokens=30 tps=400 chunk_tokens=5"])
async def test_sequential_streams_reuse_one_connection(
    tap: TapProxy, sim_upstream: Callable[..., UpstreamSettings], m27: ModelEntry, kind: str, directive: str
) -> None:
    provider = build(sim_upstream(base_url=f"http://127.0.0.1:{tap.port}/v1"), kind)
    await provider.start()
    try:
        for _ in range(4):
            assert fold(await collect(provider, ask("MiniMax-M2.7", f"hi\n@sim {directive}"), m27)).usage
        assert tap.opened == 1
    finally:
        await provider.close()
