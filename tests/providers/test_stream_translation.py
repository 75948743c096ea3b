"""Chat Completions chunks → canonical events, and SSE framing (pure)."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runapi.canonical import (
    Event,
    Finished,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UpstreamInfo,
    Usage,
    UsageReport,
)
from runapi.errors import UpstreamError
from runapi.providers.openai_wire.sse import SSEDecoder
from runapi.providers.openai_wire.stream import StreamTranslator
from runapi.providers.openai_wire.wire import chunk_decoder
from runapi.providers.think import ThinkMode
from tests.providers.conftest import fold


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    choice.update(extra.pop("choice_extra", {}))
    return {"id": "up-1", "object": "chat.completion.chunk", "choices": [choice], "usage": None, **extra}


USAGE_CHUNK = {
    "id": "up-1",
    "choices": [],
    "usage": {
        "prompt_tokens": 20,
        "completion_tokens": 9,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 3},
    },
}


def translate(
    chunks: list[dict[str, Any]],
    *,
    done: bool = True,
    think: ThinkMode = "never",
    stops: tuple[str, ...] = (),
    upstream_id: str | None = None,
) -> list[Event]:
    translator = StreamTranslator(think_mode=think, stops=stops, upstream_id=upstream_id)
    out: list[Event] = []
    translator.start(out)
    for c in chunks:
        translator.feed(chunk_decoder.decode(msgspec.json.encode(c)), out)
    translator.end(out, done=done)
    return out


def test_reasoning_split_text_and_usage() -> None:
    events = translate(
        [
            chunk(
                {
                    "role": "assistant",
                    "reasoning_content": "let me ",
                    "reasoning_details": [{"text": "let me "}],
                }
            ),
            chunk({"reasoning_content": "think", "reasoning_details": [{"text": "think"}]}),
            chunk({"content": "Hello"}),
            chunk({"content": " there"}),
            chunk({}, "stop"),
            USAGE_CHUNK,
        ]
    )
    assert events == [
        UpstreamInfo("up-1"),
        ReasoningDelta("let me "),
        ReasoningDelta("think"),
        TextDelta("Hello"),
        TextDelta(" there"),
        Finished("stop"),
        UsageReport(Usage(input_tokens=20, output_tokens=9, cached_input_tokens=4, reasoning_tokens=3)),
    ]


def test_reasoning_details_alone_and_the_reasoning_field() -> None:
    events = translate(
        [
            chunk({"reasoning_details": [{"text": "a"}, {"text": "b"}]}),
            chunk({"reasoning": "c"}),
            chunk({}, "stop"),
        ]
    )
    assert [e for e in events if isinstance(e, ReasoningDelta)] == [ReasoningDelta("ab"), ReasoningDelta("c")]


def test_header_id_comes_first_and_only_once() -> None:
    events = translate([chunk({"content": "x"}, "stop")], upstream_id="trace-9")
    assert events[0] == UpstreamInfo("trace-9")
    assert sum(isinstance(e, UpstreamInfo) for e in events) == 1


def test_tool_calls_assembled_from_fragments_and_parallel() -> None:
    events = translate(
        [
            chunk({"reasoning_content": "need weather"}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "w", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            chunk(
                {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "t", "arguments": "{}"}}]}
            ),
            chunk({}, "tool_calls"),
            USAGE_CHUNK,
        ]
    )
    completion = fold(events)
    assert [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [
        ("call_a", "w", '{"city":"Paris"}'),
        ("call_b", "t", "{}"),
    ]
    assert completion.reasoning == "need weather"
    assert completion.finish_reason == "tool_calls"
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.id) for s in starts] == [(0, "call_a"), (1, "call_b")]


def test_arguments_before_the_name_are_released_with_the_start() -> None:
    events = translate(
        [
            chunk({"tool_calls": [{"index": 0, "id": "call_x", "function": {"arguments": '{"a"'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ":1}"}}]}),
            chunk({}, "tool_calls"),
        ]
    )
    assert events[1:4] == [
        ToolCallStart(0, "call_x", "f"),
        ToolCallDelta(0, '{"a":1}'),
        Finished("tool_calls"),
    ]


def test_a_call_without_an_id_gets_one_at_the_finish() -> None:
    events = translate(
        [chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}, "stop")]
    )
    start = next(e for e in events if isinstance(e, ToolCallStart))
    assert start.id.startswith("call_")
    assert start.name == "f"
    assert events[-1] == Finished("tool_calls")  # `stop` with tool calls present


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("stop", "stop"), ("length", "length"), ("content_filter", "content_filter"), ("weird", "stop")],
)
def test_finish_reasons(raw: str, expected: str) -> None:
    assert translate([chunk({"content": "x"}, raw)])[-1] == Finished(expected)  # type: ignore[arg-type]


def test_vllm_stop_reason_names_the_stop_sequence() -> None:
    events = translate([chunk({"content": "x"}, "stop", choice_extra={"stop_reason": "END"})], stops=("END",))
    assert events[-1] == Finished("stop_sequence", stop_sequence="END")


def test_missing_done_after_finish_is_a_clean_end() -> None:
    events = translate([chunk({"content": "x"}), chunk({}, "stop"), USAGE_CHUNK], done=False)
    assert isinstance(events[-1], UsageReport)
    assert events[-2] == Finished("stop")


def test_eof_without_finish_or_usage_is_a_cut_connection() -> None:
    with pytest.raises(UpstreamError) as err:
        translate([chunk({"content": "x"})], done=False)
    assert err.value.code == "upstream_disconnected"


def test_done_without_finish_ends_as_stop() -> None:
    assert translate([chunk({"content": "x"})], done=True)[-1] == Finished("stop")


def test_usage_in_the_finish_chunk_is_reported_after_finished() -> None:
    events = translate([chunk({"content": "x"}, "stop", usage=USAGE_CHUNK["usage"])])
    assert isinstance(events[-1], UsageReport)
    assert events[-2] == Finished("stop")


def test_non_streamed_body_translates_like_a_stream() -> None:
    whole = {
        "id": "up-2",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "content": "",
                    "reasoning_content": "r",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
                },
            }
        ],
        "usage": USAGE_CHUNK["usage"],
    }
    completion = fold(translate([whole]))
    assert completion.reasoning == "r"
    assert [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [("c1", "f", "{}")]
    assert completion.usage is not None


def test_inline_think_tags_across_chunks() -> None:
    events = translate(
        [
            chunk({"content": "<thi"}),
            chunk({"content": "nk>\nplan"}),
            chunk({"content": " more\n</th"}),
            chunk({"content": "ink>\n\nAns"}),
            chunk({"content": "wer"}),
            chunk({}, "stop"),
        ],
        think="auto",
    )
    completion = fold(events)
    assert (completion.reasoning, completion.text) == ("plan more\n", "Answer")


def test_inline_reasoning_before_a_tool_call_is_released_first() -> None:
    events = translate(
        [
            chunk({"content": "<think>\nneed a tool</thi"}),
            chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}),
            chunk({}, "tool_calls"),
        ],
        think="auto",
    )
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("ReasoningDelta") < kinds.index("ToolCallStart")
    assert fold(events).reasoning == "need a tool</thi"


# ---------------------------------------------------------------- SSE framing


def sse_payloads(stream: bytes, cuts: list[int]) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    bounds = [0, *sorted(cuts), len(stream)]
    for a, b in itertools.pairwise(bounds):
        out.extend(decoder.feed(stream[a:b]))
    out.extend(decoder.finish())
    return out


STREAM = (
    b': keep-alive\n\ndata: {"a":1}\n\nevent: x\r\ndata: {"b":2}\r\n\r\ndata:{"c":3}\n\n'
    b"data: line1\ndata: line2\n\ndata: [DONE]\n\n"
)


def test_sse_events() -> None:
    assert sse_payloads(STREAM, []) == [b'{"a":1}', b'{"b":2}', b'{"c":3}', b"line1\nline2", b"[DONE]"]


def test_sse_last_event_without_blank_line_counts_at_eof() -> None:
    assert sse_payloads(b'data: {"a":1}\n\ndata: {"b":2}', []) == [b'{"a":1}', b'{"b":2}']


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_sse_any_split(cuts: list[int]) -> None:
    assert sse_payloads(STREAM, cuts) == sse_payloads(STREAM, [])


_fields = st.sampled_from(
    [b'data: {"a":1}', b'data:{"b":2}', b"data: x", b": comment", b"event: e", b"id: 7", b"data: [DONE]"]
)
_events = st.lists(st.lists(_fields, min_size=1, max_size=3), max_size=6)


def reference_payloads(events: list[list[bytes]]) -> list[bytes]:
    out = []
    for fields in events:
        data = [f[5:].removeprefix(b" ") for f in fields if f.startswith(b"data:")]
        if data:
            out.append(b"\n".join(data))
    return out


@given(_events, st.sampled_from([b"\n", b"\r\n"]), st.lists(st.integers(0, 400), max_size=10))
def test_sse_any_stream_any_split(events: list[list[bytes]], eol: bytes, cuts: list[int]) -> None:
    stream = b"".join(eol.join(fields) + eol + eol for fields in events)
    cuts = [c for c in cuts if c <= len(stream)]
    assert sse_payloads(stream, cuts) == reference_payloads(events)
