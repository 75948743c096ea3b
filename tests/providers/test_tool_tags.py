"""MiniMax's raw `<minimax:tool_call>` text → tool calls, typed by the tools' schemas (pure)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from runapi.canonical import ToolSpec
from runapi.providers.tool_tags import RawToolCall, ToolTagParser, typed_value

SEARCH = ToolSpec(
    name="search_web",
    parameters={
        "type": "object",
        "properties": {
            "query_list": {"type": "array", "items": {"type": "string"}},
            "limit": {"type": "integer"},
            "boost": {"type": "number"},
            "fresh": {"type": "boolean"},
            "filters": {"type": "object"},
            "note": {"type": ["integer", "string"]},
            "site": {"type": "string"},
        },
    },
)
WEATHER = ToolSpec(
    name="get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}}
)

OUTPUT = (
    "Searching both.\n<minimax:tool_call>\n"
    '<invoke name="search_web">\n'
    '<parameter name="query_list">["\\"OpenAI\\" latest"]</parameter>\n'
    '<parameter name="limit">5</parameter>\n'
    '<parameter name="boost">1.5</parameter>\n'
    '<parameter name="fresh">True</parameter>\n'
    '<parameter name="filters">{"lang": "en"}</parameter>\n'
    '<parameter name="note">seven</parameter>\n'
    '<parameter name="site">null</parameter>\n'
    '<parameter name="extra">\n42 \n</parameter>\n'
    "</invoke>\n"
    "<invoke name='get_weather'>\n<parameter name=city>Paris</parameter>\n</invoke>\n"
    "</minimax:tool_call>\nDone."
)


def run(parser: ToolTagParser, fragments: list[str]) -> tuple[str, list[RawToolCall]]:
    text: list[str] = []
    calls: list[RawToolCall] = []
    for fragment in fragments:
        shown, found = parser.feed(fragment)
        text.append(shown)
        calls.extend(found)
    text.append(parser.finish())
    return "".join(text), calls


def arguments(call: RawToolCall) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(call.arguments)
    return decoded


def test_a_block_becomes_typed_calls_and_the_text_around_it_stays() -> None:
    text, calls = run(ToolTagParser([SEARCH, WEATHER]), [OUTPUT])
    assert text == "Searching both.\nDone."
    assert [c.name for c in calls] == ["search_web", "get_weather"]
    assert arguments(calls[0]) == {
        "query_list": ['"OpenAI" latest'],
        "limit": 5,
        "boost": 1.5,
        "fresh": True,
        "filters": {"lang": "en"},
        "note": "seven",  # integer|string: not an integer, so text
        "site": None,
        "extra": "42",  # not in the schema: text, trimmed
    }
    assert arguments(calls[1]) == {"city": "Paris"}


@pytest.mark.parametrize("size", [1, 2, 3, 7, 19])
def test_any_split_of_the_stream_gives_the_same_result(size: int) -> None:
    whole = run(ToolTagParser([SEARCH, WEATHER]), [OUTPUT])
    pieces = [OUTPUT[i : i + size] for i in range(0, len(OUTPUT), size)]
    assert run(ToolTagParser([SEARCH, WEATHER]), pieces) == whole


def test_ordinary_text_is_held_back_only_while_it_could_open_a_block() -> None:
    parser = ToolTagParser([WEATHER])
    assert parser.feed("a <minimax:") == ("a ", [])
    assert parser.feed("thing> b") == ("<minimax:thing> b", [])
    assert parser.feed("<mini") == ("", [])
    assert parser.finish() == "<mini"


def test_what_is_not_a_call_of_a_declared_tool_stays_text() -> None:
    undeclared = '<minimax:tool_call>\n<invoke name="rm_rf">\n</invoke>\n</minimax:tool_call>'
    assert run(ToolTagParser([WEATHER]), [undeclared]) == (undeclared, [])
    empty = "<minimax:tool_call>nothing here</minimax:tool_call>"
    assert run(ToolTagParser([WEATHER]), [empty]) == (empty, [])
    cut = '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Pa'
    assert run(ToolTagParser([WEATHER]), [cut]) == (cut, [])  # never closed: text after all


@pytest.mark.parametrize(
    ("text", "declared", "value"),
    [
        ("3", "number", 3),
        ("3.0", "number", 3.0),
        ("x", "number", "x"),
        ("false", "boolean", False),
        ("yes", "boolean", "yes"),
        ("[1, 2]", "array", [1, 2]),
        ("[1, 2", "array", "[1, 2"),
        ("NULL", "string", None),
        ("12", ["string", "integer"], 12),
        ('{"a": 1}', None, '{"a": 1}'),  # no type: text, as the schema does not say
        ('{"a": 1}', "custom", {"a": 1}),  # a type not known here: tried as JSON
    ],
)
def test_values_are_typed_by_the_schema(text: str, declared: Any, value: Any) -> None:
    got = typed_value(text, declared)
    assert (got, type(got)) == (value, type(value))
