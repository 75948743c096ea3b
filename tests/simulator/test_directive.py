"""Parsing the @sim directive (pure; no server)."""

from __future__ import annotations

from typing import Any

import pytest

from runapi.simulator.directive import parse_directive
from runapi.simulator.errors import SimError


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def test_no_directive_means_defaults() -> None:
    d = parse_directive([user("plain question")])
    assert (d.tokens, d.reasoning, d.think, d.tools, d.error_status) == (None, None, True, [], None)


def test_all_keys() -> None:
    d = parse_directive(
        [
            user(
                "question\n@sim tokens=5 reasoning=0 think=off ttft_ms=12.5 tps=40 chunk_tokens=3 "
                "error=429 retry_after=7 error_after=2 error_code=1027 disconnect_after=4 no_done=1 "
                "tool=a,b tool=c cached=9 finish=content_filter tag_split=3 future_key=whatever"
            )
        ]
    )
    assert d.tokens == 5
    assert d.reasoning == 0
    assert d.think is False
    assert (d.ttft_ms, d.tps, d.chunk_tokens) == (12.5, 40.0, 3)
    assert (d.error_status, d.retry_after) == (429, 7)
    assert (d.error_after, d.error_code, d.disconnect_after) == (2, 1027, 4)
    assert d.no_done is True
    assert d.tools == ["a", "b", "c"]
    assert (d.cached, d.finish, d.tag_split) == (9, "content_filter", 3)


def test_base_resp_error() -> None:
    d = parse_directive([user("@sim error=base_resp:1008")])
    assert (d.base_resp_code, d.error_status) == (1008, None)


def test_only_the_last_user_message_counts() -> None:
    messages = [
        user("@sim tokens=99"),
        {"role": "assistant", "content": "ok"},
        user([{"type": "text", "text": "first part"}, {"type": "text", "text": "x\n  @sim tokens=2\nmore"}]),
        {"role": "assistant", "content": "@sim tokens=50"},
    ]
    assert parse_directive(messages).tokens == 2


def test_later_lines_override() -> None:
    assert parse_directive([user("@sim tokens=1\n@sim tokens=3")]).tokens == 3


def test_mentions_are_not_directives() -> None:
    assert parse_directive([user("ask @simon tokens=3\nwe say @sim tokens=4 inline")]).tokens is None


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("@sim tokens=-1", "tokens='-1' is not valid: expected a non-negative integer"),
        ("@sim tokens=1.5", "tokens='1.5'"),
        ("@sim tps=fast", "tps='fast' is not valid: expected a non-negative number"),
        ("@sim chunk_tokens=0", "chunk_tokens='0' is not valid: expected an integer >= 1"),
        ("@sim error=200", "expected an HTTP status 400-599 or base_resp:CODE"),
        ("@sim error=base_resp:x", "error='x'"),
        ("@sim no_done=maybe", "no_done='maybe'"),
        ("@sim finish=never", "finish='never'"),
        ("@sim tool=a,,b", "comma-separated tool names"),
        ("@sim tokens", "'tokens' is not a key=value pair"),
        ("@sim =3", "'=3' is not a key=value pair"),
    ],
)
def test_malformed_values_are_reported(line: str, fragment: str) -> None:
    with pytest.raises(SimError) as info:
        parse_directive([user(line)])
    assert info.value.status == 400
    assert info.value.code == 2013
    assert fragment in info.value.message
