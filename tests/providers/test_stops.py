"""Gateway-side stop sequences: fixed cases, then split-invariance against a reference."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runapi.canonical import (
    Event,
    Finished,
    ReasoningDelta,
    TextDelta,
    ToolCallStart,
    UpstreamInfo,
    Usage,
    UsageReport,
)
from runapi.canonical.stops import StopSequenceFilter, find_stop

USAGE = UsageReport(Usage(input_tokens=3, output_tokens=5))


def run(events: list[Event], stops: list[str]) -> list[Event]:
    flt = StopSequenceFilter(stops)
    out: list[Event] = []
    for event in events:
        out.extend(flt.feed(event))
    out.extend(flt.finish())
    return out


def merged(events: list[Event]) -> list[Event]:
    """Adjacent text deltas joined, so outputs compare independent of chunking."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, TextDelta) and out and isinstance(out[-1], TextDelta):
            out[-1] = TextDelta(out[-1].text + event.text)
        elif not (isinstance(event, TextDelta) and not event.text):
            out.append(event)
    return out


def test_truncates_at_the_match_and_reports_it() -> None:
    events: list[Event] = [
        UpstreamInfo("up-1"),
        TextDelta("Hello wor"),
        TextDelta("ld. END and more"),
        TextDelta("ignored"),
        Finished("stop"),
        USAGE,
    ]
    assert merged(run(events, ["END"])) == [
        UpstreamInfo("up-1"),
        TextDelta("Hello world. "),
        Finished("stop_sequence", stop_sequence="END"),
        USAGE,
    ]


def test_stop_split_across_deltas() -> None:
    out = run([TextDelta("abc<"), TextDelta("/st"), TextDelta("op>rest"), Finished("stop")], ["</stop>"])
    assert merged(out) == [TextDelta("abc"), Finished("stop_sequence", stop_sequence="</stop>")]


def test_only_a_possible_stop_prefix_is_held() -> None:
    flt = StopSequenceFilter(["STOP"])
    assert flt.feed(TextDelta("hello S")) == [TextDelta("hello ")]
    assert flt.feed(TextDelta("x")) == [TextDelta("Sx")]
    assert flt.feed(Finished("length")) == [Finished("length")]


def test_no_match_passes_everything_through() -> None:
    events: list[Event] = [ReasoningDelta("think"), TextDelta("a"), TextDelta("b"), Finished("stop"), USAGE]
    assert merged(run(events, ["zzz"])) == [ReasoningDelta("think"), TextDelta("ab"), Finished("stop"), USAGE]


def test_reasoning_and_tool_calls_are_not_searched_and_break_text_runs() -> None:
    events: list[Event] = [
        ReasoningDelta("STOP in reasoning"),
        TextDelta("ST"),
        ToolCallStart(0, "call_1", "f"),
        TextDelta("OP"),
        Finished("tool_calls"),
    ]
    assert merged(run(events, ["STOP"])) == [
        ReasoningDelta("STOP in reasoning"),
        TextDelta("ST"),
        ToolCallStart(0, "call_1", "f"),
        TextDelta("OP"),
        Finished("tool_calls"),
    ]


def test_the_sequence_completing_first_wins() -> None:
    assert find_stop("xabcd", ["abcd", "bc"]) == (2, "bc")
    assert find_stop("xabcd", ["abc", "xab"]) == (0, "xab")
    assert find_stop("aab", ["ab", "aab"]) == (0, "aab")  # same end: the earlier start
    assert find_stop("abc", ["", "q"]) is None


def test_empty_stop_strings_are_ignored() -> None:
    assert merged(run([TextDelta("abc"), Finished("stop")], [""])) == [TextDelta("abc"), Finished("stop")]


def reference(text: str, stops: list[str]) -> list[Event]:
    match = find_stop(text, [s for s in stops if s])
    if match is None:
        return merged([TextDelta(text), Finished("stop"), USAGE])
    start, stop = match
    return merged([TextDelta(text[:start]), Finished("stop_sequence", stop_sequence=stop), USAGE])


_alphabet = st.sampled_from("ab\n<>/")


@st.composite
def case(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    text = draw(st.text(_alphabet, max_size=40))
    stops = draw(st.lists(st.text(_alphabet, min_size=1, max_size=5), min_size=1, max_size=4))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=10)))
    bounds = [0, *cuts, len(text)]
    return text, stops, [text[a:b] for a, b in itertools.pairwise(bounds)]


@given(case())
def test_any_split_matches_the_reference(c: tuple[str, list[str], list[str]]) -> None:
    text, stops, chunks = c
    events: list[Event] = [TextDelta(chunk) for chunk in chunks]
    events += [Finished("stop"), USAGE]
    assert merged(run(events, stops)) == reference(text, stops)


@given(case())
def test_released_text_never_contains_a_stop(c: tuple[str, list[str], list[str]]) -> None:
    text, stops, chunks = c
    out = run([TextDelta(chunk) for chunk in chunks], stops)
    released = "".join(e.text for e in out if isinstance(e, TextDelta))
    assert not any(s in released for s in stops)
    assert text.startswith(released)


@pytest.mark.parametrize("stops", [["a"], ["ab", "b"]])
async def test_async_wrapper_closes_the_source(stops: list[str]) -> None:
    from runapi.canonical.stops import apply_stop_sequences

    closed = False

    async def source() -> AsyncIterator[Event]:
        nonlocal closed
        try:
            yield TextDelta("xxab")
            yield TextDelta("never reached")
        finally:
            closed = True

    wrapped = apply_stop_sequences(source(), stops)
    first = [e async for e in wrapped]
    assert first[-1] == Finished("stop_sequence", stop_sequence=stops[0] if stops == ["a"] else "ab")
    assert closed
