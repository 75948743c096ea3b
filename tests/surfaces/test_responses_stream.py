"""Responses SSE: event order per §2.5, consecutive sequence numbers, every frame validated as an
SDK event, and the whole stream folded by the SDK's own `responses.stream()` state machine."""

from __future__ import annotations

from typing import Any

import msgspec
import openai
import pydantic
import pytest
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from runapi.canonical import (
    ChatRequest,
    Completion,
    Event,
    Finished,
    Message,
    ReasoningDelta,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
)
from runapi.canonical.accumulate import Accumulator
from runapi.canonical.codec import Decoded, ResponseMeta, StreamEncoder
from runapi.errors import RateLimited, RunapiError, UpstreamError
from runapi.surfaces.openai_responses import ResponsesSurface

surface = ResponsesSurface(b"test-signing-key")
_events: pydantic.TypeAdapter[ResponseStreamEvent] = pydantic.TypeAdapter(ResponseStreamEvent)
ULID = "01JZ8Q4M1T6Y3N0X5V2C7B9D8E"
USAGE = Usage(input_tokens=120, output_tokens=57, cached_input_tokens=20, reasoning_tokens=9)
DECODED = Decoded(request=ChatRequest(model="MiniMax-M2.7", messages=(Message("user", (TextPart("hi"),)),)))

Frames = list[tuple[str, dict[str, Any]]]


def sse(raw: bytes) -> Frames:
    frames = []
    assert raw.endswith(b"\n\n")
    for block in raw.decode().split("\n\n")[:-1]:
        lines = block.split("\n")
        assert len(lines) == 2, block
        assert lines[0].startswith("event: "), block
        assert lines[1].startswith("data: "), block
        name, data = lines[0][7:], msgspec.json.decode(lines[1][6:])
        assert data["type"] == name
        assert "error" not in data or name != "error"  # a top-level `error` key makes openai-python raise
        frames.append((name, data))
    seqs = [d["sequence_number"] for _, d in frames]
    assert seqs == list(range(len(frames)))  # starts at 0, +1 per event
    return frames


def meta() -> ResponseMeta:
    return ResponseMeta(
        surface_id=f"resp_{ULID}",
        task_id=f"task_{ULID}",
        request_id="req_1",
        model="MiniMax-M2.7",
        created=1_700_000_000,
    )


def run(events: list[Event]) -> tuple[Frames, Completion]:
    m = meta()
    encoder: StreamEncoder = surface.stream_encoder(m, DECODED)
    acc = Accumulator()
    out = encoder.start()
    for event in events:
        acc.add(event)
        out += encoder.event(event)
    m.cost_usd = 0.0009
    done = acc.finish()
    return sse(out + encoder.finish(done)), done


def sdk_fold(frames: Frames) -> list[Any]:
    """Feed the frames to openai-python's stream state, as `responses.stream()` does."""
    state = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)
    emitted: list[Any] = []
    for _, data in frames:
        emitted.extend(state.handle_event(_events.validate_python(data)))
    # The running snapshot (what `current_snapshot` exposes): each message holds one text part.
    snapshot = state._ResponseStreamState__current_snapshot  # type: ignore[attr-defined]
    for item in snapshot.output:
        if item.type == "message":
            assert len(item.content) == 1
    return emitted


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
    assert [n for n, _ in frames] == [
        "response.created",
        "response.in_progress",
        # reasoning item
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        # message item
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        # function calls: no content parts
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = frames[0][1]["response"]
    assert (created["id"], created["status"], created["output"], created["usage"]) == (
        f"resp_{ULID}",
        "in_progress",
        [],
        None,
    )
    added = [d for n, d in frames if n == "response.output_item.added"]
    assert [a["output_index"] for a in added] == [0, 1, 2, 3]
    assert added[0]["item"]["type"] == "reasoning"
    assert added[0]["item"]["summary"] == []
    assert added[1]["item"] == {
        "type": "message",
        "id": f"msg_{ULID}_1",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    assert added[2]["item"]["arguments"] == ""
    assert added[2]["item"]["call_id"] == "call_function_1"
    text_delta = next(d for n, d in frames if n == "response.output_text.delta")
    assert text_delta == {
        "type": "response.output_text.delta",
        "sequence_number": 11,
        "item_id": f"msg_{ULID}_1",
        "output_index": 1,
        "content_index": 0,
        "delta": "Let me ",
        "logprobs": [],
    }
    args_done = [d for n, d in frames if n == "response.function_call_arguments.done"]
    assert [a["arguments"] for a in args_done] == ['{"city": "Paris"}', "{}"]


def test_sdk_stream_state_accepts_the_stream() -> None:
    frames, done = run(FULL)
    emitted = sdk_fold(frames)
    final = next(e for e in emitted if e.type == "response.completed").response
    assert final.status == "completed"
    assert [o.type for o in final.output] == ["reasoning", "message", "function_call", "function_call"]
    assert final.output_text == "Let me check."
    snapshots = [e.snapshot for e in emitted if e.type == "response.function_call_arguments.delta"]
    assert snapshots[1] == '{"city": "Paris"}'
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 9
    completed = frames[-1][1]["response"]
    assert completed["usage"]["cost"] == 0.0009
    # The streamed final object equals the non-streaming body for the same completion.
    body = msgspec.json.decode(surface.render(done, meta()))
    assert completed["output"] == body["output"]
    Response.model_validate(completed)


def test_length_ends_incomplete() -> None:
    frames, _ = run([TextDelta("partial"), Finished("length"), UsageReport(USAGE)])
    assert frames[-1][0] == "response.incomplete"
    response = frames[-1][1]["response"]
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    item_done = next(d for n, d in frames if n == "response.output_item.done")
    assert item_done["item"]["status"] == "incomplete"
    emitted = sdk_fold(frames)
    assert emitted[-1].type == "response.incomplete"


def test_content_filter_ends_incomplete() -> None:
    frames, _ = run([TextDelta("x"), Finished("content_filter")])
    assert frames[-1][1]["response"]["incomplete_details"] == {"reason": "content_filter"}


def test_stop_sequence_is_completed() -> None:
    frames, _ = run([TextDelta("x"), Finished("stop_sequence", "END")])
    assert frames[-1][0] == "response.completed"


def test_interleaved_reasoning_and_late_argument_fragment() -> None:
    events: list[Event] = [
        ReasoningDelta("a"),
        ToolCallStart(index=0, id="c1", name="f"),
        ToolCallDelta(index=0, arguments='{"x":'),
        ReasoningDelta("b"),
        ToolCallDelta(index=0, arguments="1}"),  # arrives after its item closed
        TextDelta("done"),
        Finished("stop"),
    ]
    frames, _done = run(events)
    types = [d["item"]["type"] for n, d in frames if n == "response.output_item.added"]
    assert types == ["reasoning", "function_call", "reasoning", "message"]
    final = frames[-1][1]["response"]
    assert final["output"][1]["arguments"] == '{"x":1}'
    sdk_fold(frames)


@pytest.mark.parametrize(
    ("error", "code"),
    [(UpstreamError("upstream 500"), "server_error"), (RateLimited("slow"), "rate_limit_exceeded")],
)
def test_in_stream_error(error: RunapiError, code: str) -> None:
    encoder = surface.stream_encoder(meta(), DECODED)
    raw = encoder.start() + encoder.event(TextDelta("partial")) + encoder.error(error)
    frames = sse(raw)
    assert [n for n, _ in frames][-3:] == ["response.output_item.done", "response.failed", "error"]
    failed = frames[-2][1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": code, "message": error.message}
    assert failed["output"][0]["status"] == "incomplete"
    assert frames[-1][1] == {
        "type": "error",
        "sequence_number": frames[-1][1]["sequence_number"],
        "code": error.code,
        "message": error.message,
        "param": None,
    }
    emitted = sdk_fold(frames)
    assert [e.type for e in emitted][-2:] == ["response.failed", "error"]


def test_keepalive_is_a_comment() -> None:
    encoder = surface.stream_encoder(meta(), DECODED)
    assert encoder.keepalive() == b": keep-alive\n\n"
    assert encoder.content_type == "text/event-stream"
