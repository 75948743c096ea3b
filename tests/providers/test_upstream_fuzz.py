"""A mangled upstream answer is the upstream's fault, not a gateway crash: whatever MiniMax (or an
OpenAI-compatible server) sends, the provider's stream state yields events and at most an
`UpstreamError`-like `RunapiError` (never another exception, which the pipeline would report as a
500 of ours), and the events it did yield render on every surface, streamed and whole.

Streams start from a valid one (reasoning, text, a tool call, usage) and have one chunk mangled
anywhere with arbitrary JSON; whole documents (a server that ignored `stream: true`) likewise.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runapi.canonical import ChatRequest, Event, Message, TextPart, ToolSpec
from runapi.canonical.accumulate import Accumulator
from runapi.canonical.codec import ResponseMeta, Surface
from runapi.errors import ErrorKind, RunapiError
from runapi.providers.minimax import minimax_provider
from runapi.providers.openai_compatible import openai_compatible_provider
from runapi.providers.openai_wire import ChatCompletionsProvider
from runapi.providers.openai_wire.provider import _StreamState
from runapi.settings import Settings, UpstreamSettings
from runapi.surfaces.anthropic_messages import AnthropicMessagesSurface
from runapi.surfaces.openai_chat import ChatCompletionsSurface
from runapi.surfaces.openai_responses import ResponsesSurface
from tests.jsonfuzz import json_values, mangled_json

WEATHER = ToolSpec(
    name="get_weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
REQUEST = ChatRequest(
    model="MiniMax-M2.7",
    messages=(Message(role="user", parts=(TextPart("Weather in Paris?"),)),),
    tools=(WEATHER,),
    stop=("END",),
    stream=True,
)
UPSTREAM = UpstreamSettings(kind="minimax", base_url="http://127.0.0.1:9/v1", api_key="unused")
PROVIDERS: list[ChatCompletionsProvider] = []
for make in (minimax_provider, openai_compatible_provider):
    built = make("fuzz", UPSTREAM, Settings())
    assert isinstance(built, ChatCompletionsProvider)
    PROVIDERS.append(built)
SURFACES: list[Surface] = [
    ChatCompletionsSurface(),
    AnthropicMessagesSurface(b"fuzz-key"),
    ResponsesSurface(b"fuzz-key"),
]


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {
        "id": "up-1",
        "object": "chat.completion.chunk",
        "model": "MiniMax-M2.7",
        "choices": [choice],
        **extra,
    }


STREAM: list[dict[str, Any]] = [
    _chunk({"role": "assistant", "reasoning_details": [{"type": "reasoning.text", "text": "Think."}]}),
    _chunk({"content": "Let me check. "}),
    _chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"ci'},
                }
            ]
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}),
    _chunk({}, finish="tool_calls"),
    {
        "id": "up-1",
        "choices": [],
        "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
        "base_resp": {"status_code": 0, "status_msg": ""},
    },
]
DOCUMENT: dict[str, Any] = {
    "id": "up-1",
    "object": "chat.completion",
    "model": "MiniMax-M2.7",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "<think>Hm.</think>Sunny.",
                "reasoning_content": None,
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35},
}


@st.composite
def mangled_stream(draw: st.DrawFn) -> list[bytes]:
    chunks: list[Any] = list(STREAM)
    at = draw(st.integers(min_value=0, max_value=len(chunks) - 1))
    chunks[at] = draw(mangled_json(chunks[at]))
    if draw(st.booleans()):
        chunks.insert(draw(st.integers(min_value=0, max_value=len(chunks))), draw(json_values))
    return [msgspec.json.encode(c) for c in chunks]


@st.composite
def mangled_document(draw: st.DrawFn) -> bytes:
    return msgspec.json.encode(draw(mangled_json(DOCUMENT)))


def _rendered_everywhere(events: list[Event], failed: RunapiError | None) -> None:
    meta = ResponseMeta(
        surface_id="x-1", task_id="task_1", request_id="req_1", model="MiniMax-M2.7", created=1
    )
    accumulator = Accumulator()
    for event in events:
        accumulator.add(event)
    completion = accumulator.finish()
    for surface in SURFACES:
        decoded = surface.decode(msgspec.json.encode(_request_body(surface)))
        encoder = surface.stream_encoder(meta, decoded)
        frames = [encoder.start(), *(encoder.event(e) for e in events)]
        frames.append(encoder.error(failed) if failed is not None else encoder.finish(completion))
        assert all(isinstance(f, bytes) for f in frames)
        if failed is None:
            assert msgspec.json.decode(surface.render(completion, meta))
        else:
            status, body, _ = surface.render_error(failed, "req_1")
            assert status >= 400
            assert msgspec.json.decode(body)


def _upstream_fault(error: RunapiError | None) -> None:
    """No error, or one that blames the upstream (or what it said of the request), never us."""
    if error is not None:
        assert error.kind is not ErrorKind.INTERNAL, error.message
        assert 400 <= error.status < 600


def _request_body(surface: Surface) -> dict[str, Any]:
    if surface.endpoint == "messages":
        return {"model": "MiniMax-M2.7", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
    if surface.endpoint == "responses":
        return {"model": "MiniMax-M2.7", "input": "Hi"}
    return {"model": "MiniMax-M2.7", "messages": [{"role": "user", "content": "Hi"}]}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=mangled_stream(), provider=st.sampled_from(PROVIDERS), split=st.integers(min_value=1, max_value=97)
)
def test_a_mangled_stream_yields_events_or_an_upstream_error(
    chunks: list[bytes], provider: ChatCompletionsProvider, split: int
) -> None:
    wire = b"".join(b"data: " + c + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    state = _StreamState(provider, REQUEST, "trace-1")
    events: list[Event] = []
    for start in range(0, len(wire), split):  # network reads cut anywhere
        events.extend(state.feed_sse(wire[start : start + split]))
        if state.error is not None or state.ended:
            break
    if not state.ended and state.error is None:
        events.extend(state.end())
    _upstream_fault(state.error)
    _rendered_everywhere(events, state.error)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=mangled_document(), provider=st.sampled_from(PROVIDERS))
def test_a_mangled_whole_document_yields_events_or_an_upstream_error(
    document: bytes, provider: ChatCompletionsProvider
) -> None:
    state = _StreamState(provider, REQUEST, None)
    events = state.feed_document(document)
    assert state.ended
    _upstream_fault(state.error)
    _rendered_everywhere(events, state.error)
