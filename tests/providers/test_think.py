"""The streaming <think> parser: fixed cases, then split-invariance for any text and any chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runapi.providers.think import ThinkMode, ThinkParser


def run(chunks: list[str], mode: ThinkMode = "auto") -> tuple[str, str]:
    parser = ThinkParser(mode)
    reasoning: list[str] = []
    text: list[str] = []
    for chunk in chunks:
        r, t = parser.feed(chunk)
        reasoning.append(r)
        text.append(t)
    r, t = parser.finish()
    reasoning.append(r)
    text.append(t)
    return "".join(reasoning), "".join(text)


@pytest.mark.parametrize(
    ("content", "mode", "expected"),
    [
        ("<think>\nplan it\n</think>\n\nThe answer.", "auto", ("plan it\n", "The answer.")),
        ("The answer, no reasoning.", "auto", ("", "The answer, no reasoning.")),
        ("  <think>x</think>y", "auto", ("x", "y")),
        ("plan it\n</think>\n\nThe answer.", "auto", ("", "plan it\n</think>\n\nThe answer.")),
        ("plan it\n</think>\n\nThe answer.", "always", ("plan it\n", "The answer.")),
        ("<think>\nplan</think>answer", "always", ("plan", "answer")),
        ("<think>unfinished reasoning", "auto", ("unfinished reasoning", "")),
        ("<thi", "auto", ("", "<thi")),
        ("", "auto", ("", "")),
        ("<think>a</think>b<think>c</think>", "auto", ("a", "b<think>c</think>")),
        ("<think>a</think>b", "never", ("", "<think>a</think>b")),
        ("<think></think>\n\n\nanswer\n\nmore", "auto", ("", "answer\n\nmore")),
    ],
)
def test_whole_content(content: str, mode: ThinkMode, expected: tuple[str, str]) -> None:
    assert run([content], mode) == expected


def test_tags_split_at_every_position() -> None:
    content = "<think>\nreasoning here\n</think>\n\nanswer text"
    for cut in range(len(content) + 1):
        assert run([content[:cut], content[cut:]]) == ("reasoning here\n", "answer text"), cut


def test_one_character_at_a_time() -> None:
    content = "<think>\nabc</think>\n\nxyz"
    assert run(list(content)) == ("abc", "xyz")


def test_releases_everything_not_part_of_a_tag_at_once() -> None:
    parser = ThinkParser("auto")
    assert parser.feed("<think>\nstep one ") == ("step one ", "")
    assert parser.feed("then </th") == ("then ", "")  # only the possible tag is held
    assert parser.feed("ink>\n\nHello") == ("", "Hello")
    assert parser.feed(" world") == ("", " world")


# Text made of the characters that matter most: tag pieces, newlines, whitespace, letters.
_pieces = st.sampled_from(["<think>", "</think>", "<", "/", "think", ">", "\n", " ", "a", "b", "<th", "k>"])
_texts = st.lists(_pieces, max_size=30).map("".join)


@st.composite
def text_and_cuts(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(st.one_of(_texts, st.text(max_size=60)))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=8)))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
@given(case=text_and_cuts())
def test_any_split_gives_the_unsplit_result(mode: ThinkMode, case: tuple[str, list[str]]) -> None:
    text, chunks = case
    assert run(chunks, mode) == run([text], mode)


@given(case=text_and_cuts())
def test_nothing_is_lost_without_tags(case: tuple[str, list[str]]) -> None:
    text, chunks = case
    if "<think>" in text or "</think>" in text:
        return
    reasoning, out = run(chunks, "auto")
    assert (reasoning, out) == ("", text)
