"""Anthropic SSE: event order per §3.6, every frame validated as an SDK event, and the whole
stream folded by the SDK's own accumulator."""

from __future__ import annotations

from typing import Any

import msgspec
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent

from runapi.canonical import (
    Completion,
    Event,
    Finished,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
)
from runapi.canonical.accumulate import Accumulator
from runapi.canonical.codec import Decoded, ResponseMeta, StreamEncoder
from runapi.errors import Overloaded, UpstreamError
from runapi.surfaces.anthropic_messages import AnthropicMessagesSurface, AnthropicStreamEncoder

surface = AnthropicMessagesSurface(b"test-signing-key")
_events: pydantic.TypeAdapter[RawMessageStreamEvent] = pydantic.TypeAdapter(RawMessageStreamEvent)
USAGE = Usage(input_tokens=120, output_tokens=57, cached_input_tokens=20, reasoning_tokens=9)


def sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Parse frames strictly: each has exactly an `event:` line and one `data:` line."""
    frames = []
    assert raw.endswith(b"\n\n")
    for block in raw.decode().split("\n\n")[:-1]:
        lines = block.split("\n")
        assert len(lines) == 2, block
        assert lines[0].startswith("event: "), block
        assert lines[1].startswith("data: "), block
        name, data = lines[0][7:], msgspec.json.decode(lines[1][6:])
        assert data["type"] == name  # the SDK dispatches on data.type; they must agree
        frames.append((name, data))
    return frames


def sdk_frames(frames: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """What the SDK dispatches: everything but `ping`."""
    return [(n, d) for n, d in frames if n != "ping"]


def meta() -> ResponseMeta:
    return ResponseMeta(
        surface_id="msg_01JZ8Q4M1T6Y3N0X5V2C7B9D8E",
        task_id="task_1",
        request_id="req_1",
        model="MiniMax-M2.7",
        created=1,
        input_token_estimate=95,
    )


def run(
    events: list[Event], m: ResponseMeta | None = None
) -> tuple[list[tuple[str, dict[str, Any]]], Completion]:
    m = m or meta()
    encoder: StreamEncoder = surface.stream_encoder(m, Decoded(request=_request()))
    acc = Accumulator()
    out = encoder.start()
    for event in events:
        acc.add(event)
        out += encoder.event(event)
    m.cost_usd = 0.0021  # the pipeline settles before the terminal frame
    done = acc.finish()
    out += encoder.finish(done)
    return sse(out), done


def _request() -> Any:
    from runapi.canonical import ChatRequest, Message, TextPart

    return ChatRequest(model="MiniMax-M2.7", messages=(Message("user", (TextPart("hi"),)),))


FULL: list[Event] = [
    ReasoningDelta("User wants "),
    ReasoningDelta("weather."),
    TextDelta("Let me "),
    TextDelta("check."),
    ToolCallStart(index=0, id="call_function_1", name="get_weather"),
    ToolCallDelta(index=0, arguments='{"city": "Pa'),
    ToolCallDelta(index=0, arguments='ris"}'),
    ToolCallStart(index=1, id="call_function_2", name="get_time"),
    ToolCallDelta(index=1, arguments="{}"),
    Finished("tool_calls"),
    UsageReport(USAGE),
]


def test_event_order_matches_the_spec() -> None:
    frames, _ = run(FULL)
    names = [n if n != "content_block_delta" else f"delta:{d['delta']['type']}" for n, d in frames]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "delta:thinking_delta",
        "delta:thinking_delta",
        "delta:signature_delta",
        "content_block_stop",
        "content_block_start",
        "delta:text_delta",
        "delta:text_delta",
        "content_block_stop",
        "content_block_start",
        "delta:input_json_delta",
        "content_block_stop",
        "content_block_start",
        "delta:input_json_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    starts = [d for n, d in frames if n == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2, 3]
    assert starts[0]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert starts[2]["content_block"] == {
        "type": "tool_use",
        "id": "call_function_1",
        "name": "get_weather",
        "input": {},
    }
    for name, data in frames:
        if name != "ping":  # the SDK skips pings (§0.1)
            _events.validate_python(data)  # strict: every other frame is a valid SDK event


def test_message_start_and_delta_usage() -> None:
    frames, _ = run(FULL)
    start = frames[0][1]["message"]
    assert start["id"] == "msg_01JZ8Q4M1T6Y3N0X5V2C7B9D8E"
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 95  # the estimate; the real count comes at the end
    delta = frames[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"] == {
        "input_tokens": 100,
        "output_tokens": 57,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 20,
        "output_tokens_details": {"thinking_tokens": 9},
        "cost": 0.0021,
    }


def test_sdk_accumulator_rebuilds_the_message() -> None:
    frames, done = run(FULL)
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for _, data in sdk_frames(frames):
        event = _events.validate_python(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    thinking, text, weather, clock = snapshot.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "User wants weather."
    assert thinking.signature == surface.signer.sign("User wants weather.")
    assert text.type == "text"
    assert text.text == "Let me check."
    assert weather.type == "tool_use"
    assert weather.input == {"city": "Paris"}
    assert clock.type == "tool_use"
    assert clock.input == {}
    assert snapshot.stop_reason == "tool_use"
    assert snapshot.usage.input_tokens == 100
    assert snapshot.usage.cache_read_input_tokens == 20
    assert snapshot.usage.output_tokens == 57
    # The streamed message equals the non-streaming body for the same completion.
    body = msgspec.json.decode(surface.render(done, meta()))
    assert snapshot.model_dump(include={"content"}, exclude_none=True) == {"content": body["content"]}


def test_invalid_tool_json_is_wrapped_not_streamed_raw() -> None:
    events: list[Event] = [
        ToolCallStart(index=0, id="c1", name="f"),
        ToolCallDelta(index=0, arguments='{"a": '),
        ToolCallDelta(index=0, arguments="oops"),
        Finished("tool_calls"),
    ]
    frames, _ = run(events)
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for _, data in sdk_frames(frames):
        snapshot = accumulate_event(
            event=_events.validate_python(data), current_snapshot=snapshot, json_bufs=json_bufs
        )
    assert snapshot is not None
    block = snapshot.content[0]
    assert block.type == "tool_use"
    assert block.input == {"_raw": '{"a": oops'}


def test_stop_sequence_and_length() -> None:
    frames, _ = run([TextDelta("abc"), Finished("stop_sequence", "END")])
    assert frames[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    frames, _ = run([TextDelta("abc"), Finished("length")])
    assert frames[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_empty_answer_and_missing_usage_keep_the_estimate() -> None:
    frames, _ = run([Finished("stop")])
    assert [n for n, _ in frames] == ["message_start", "ping", "message_delta", "message_stop"]
    assert frames[2][1]["usage"]["input_tokens"] == 95


def test_interleaved_thinking_opens_new_blocks() -> None:
    events: list[Event] = [
        ReasoningDelta("a"),
        ToolCallStart(index=0, id="c1", name="f"),
        ToolCallDelta(index=0, arguments="{}"),
        ReasoningDelta("b"),
        TextDelta("done"),
        Finished("stop"),
    ]
    frames, _ = run(events)
    blocks = [d["content_block"]["type"] for n, d in frames if n == "content_block_start"]
    assert blocks == ["thinking", "tool_use", "thinking", "text"]
    signatures = [
        d["delta"]["signature"]
        for n, d in frames
        if n == "content_block_delta" and d["delta"]["type"] == "signature_delta"
    ]
    assert signatures == [surface.signer.sign("a"), surface.signer.sign("b")]


@pytest.mark.parametrize(
    ("error", "error_type"), [(Overloaded("busy"), "overloaded_error"), (UpstreamError("boom"), "api_error")]
)
def test_in_stream_error(error: Any, error_type: str) -> None:
    encoder = AnthropicStreamEncoder(meta(), surface.signer)
    raw = encoder.start() + encoder.event(TextDelta("partial")) + encoder.error(error)
    frames = sse(raw)
    assert frames[-1] == (
        "error",
        {"type": "error", "error": {"type": error_type, "message": error.message}, "request_id": "req_1"},
    )


def test_keepalive_is_a_ping_event() -> None:
    encoder = AnthropicStreamEncoder(meta(), surface.signer)
    assert sse(encoder.keepalive()) == [("ping", {"type": "ping"})]
    assert encoder.content_type == "text/event-stream"
