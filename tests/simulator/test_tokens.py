"""The tokenization rule, as documented in the package docstring."""

from __future__ import annotations

import pytest

from runapi.simulator import count_prompt_tokens, count_text_tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("Hello, world!", 4),
        ("  spaced   out  ", 2),
        ("héllo wörld", 2),
        ('{"a":1}', 7),
        ("snake_case x2", 2),
        ("@sim tokens=5", 5),
    ],
)
def test_text_tokens(text: str, tokens: int) -> None:
    assert count_text_tokens(text) == tokens


def test_prompt_is_reply_overhead_plus_messages() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are terse."},  # 4 + 4
            {"role": "user", "content": "Hi there"},  # 4 + 2
        ]
    }
    assert count_prompt_tokens(body) == 3 + 8 + 6


def test_text_parts_count_and_images_do_not() -> None:
    content = [
        {"type": "text", "text": "look at"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "this"},
    ]
    assert count_prompt_tokens({"messages": [{"role": "user", "content": content}]}) == 3 + 4 + 3


def test_replayed_reasoning_is_not_counted() -> None:
    message = {
        "role": "assistant",
        "content": "<think>\nlots of private words\n</think>\n\nDone.",
        "reasoning_content": "ignored entirely",
        "reasoning_details": [{"type": "reasoning.text", "text": "ignored too"}],
    }
    assert count_prompt_tokens({"messages": [message]}) == 3 + 4 + 2


def test_tool_calls_and_results_count() -> None:
    messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    # get_weather = 1; {"city":"Paris"} = 9; "sunny, 21 C" = 4
    assert count_prompt_tokens({"messages": messages}) == 3 + (4 + 1 + 9) + (4 + 4)


def test_tool_definition_is_overhead_plus_compact_json() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    # {"name":"f","parameters":{"type":"object"}} is 23 tokens
    assert count_prompt_tokens({"messages": [], "tools": [tool]}) == 3 + 10 + 23
