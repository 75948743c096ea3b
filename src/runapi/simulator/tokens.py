"""The simulator's one tokenization rule (see the package docstring for the full statement).

A token is a match of ``\\w+|[^\\w\\s]`` (Python ``re``, Unicode-aware) over a piece of text.
Pieces are counted separately and summed, so two pieces never merge into one token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

__all__ = [
    "MESSAGE_OVERHEAD",
    "REPLY_OVERHEAD",
    "TOOL_OVERHEAD",
    "count_prompt_tokens",
    "count_text_tokens",
]

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD = 4
"""Tokens added per message (role and framing)."""
TOOL_OVERHEAD = 10
"""Tokens added per tool definition."""
REPLY_OVERHEAD = 3
"""Tokens added once per request (priming the assistant's reply)."""

# Replayed reasoning is not billed again as prompt (probes against MiniMax, protocols §5.4).
_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL)


def count_text_tokens(text: str) -> int:
    """Number of tokens in ``text`` under the simulator's rule."""
    return sum(1 for _ in TOKEN_RE.finditer(text))


def _content_texts(content: Any) -> Iterator[str]:
    # Only text is counted: image and other non-text parts contribute nothing.
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                yield part
            elif isinstance(part, Mapping) and part.get("type") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    yield text


def _message_texts(message: Mapping[str, Any]) -> Iterator[str]:
    is_assistant = message.get("role") == "assistant"
    for text in _content_texts(message.get("content")):
        yield _THINK_RE.sub("", text) if is_assistant else text
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        for call in tool_calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                for key in ("name", "arguments"):
                    value = function.get(key)
                    if isinstance(value, str):
                        yield value


def count_message_tokens(message: Mapping[str, Any]) -> int:
    """Tokens one message adds to ``prompt_tokens``: the overhead plus its counted text."""
    return MESSAGE_OVERHEAD + sum(count_text_tokens(t) for t in _message_texts(message))


def count_tool_tokens(tool: Mapping[str, Any]) -> int:
    """Tokens one tool definition adds: the overhead plus its compact JSON ``function`` object."""
    function = tool.get("function", tool)
    # Compact, UTF-8, non-ASCII unescaped; key order and whitespace cannot change the count.
    return TOOL_OVERHEAD + count_text_tokens(msgspec.json.encode(function).decode())


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Predict ``usage.prompt_tokens`` for a chat-completions request body (the decoded JSON).

    ``3 + Σ messages (4 + text tokens) + Σ tools (10 + tokens of the compact JSON function)``.
    """
    messages = body.get("messages") or []
    tools = body.get("tools") or []
    total = REPLY_OVERHEAD
    total += sum(count_message_tokens(m) for m in messages if isinstance(m, Mapping))
    total += sum(count_tool_tokens(t) for t in tools if isinstance(t, Mapping))
    return total
