"""Deciding what the fake model answers: words, tool calls, finish reason and usage.

Everything here is a pure function of the request body, the directive and the config, so the
same request always gets the same answer (ids and timestamps aside).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from .catalog import ModelInfo
from .config import SimConfig
from .directive import Directive
from .errors import invalid_params
from .schema_values import value_for_schema
from .tokens import count_text_tokens
from .validation import thinking_disabled
from .vocabulary import WORDS
from .wire import ChatRequest

__all__ = [
    "CLOSE_THINK",
    "DEFAULT_REASONING_TOKENS",
    "Completion",
    "ToolCall",
    "plan_completion",
    "request_digest",
]

DEFAULT_REASONING_TOKENS = 8
CLOSE_THINK = "\n</think>\n\n"
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
# Fields that change how an answer is delivered, not what it says: a streamed, inline-<think>
# answer is the same answer as a non-streamed, reasoning_split one.
_DELIVERY_FIELDS = ("stream", "stream_options", "reasoning_split")


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    pieces: tuple[str, ...]
    """How ``arguments`` is split across stream fragments (concatenation == ``arguments``)."""
    tokens: int
    """Completion tokens this call costs: the tokens of ``arguments``."""


@dataclass(frozen=True, slots=True)
class Completion:
    reasoning: tuple[str, ...]
    reasoning_closed: bool
    """False when the output budget ran out inside the reasoning: no ``</think>`` is written."""
    content: tuple[str, ...]
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    prompt_tokens: int
    cached_tokens: int
    output_sensitive: bool
    tag_split: int
    """Characters of ``CLOSE_THINK`` streamed with the last reasoning chunk; the rest opens the
    next chunk (inline ``<think>`` mode only)."""

    @property
    def reasoning_tokens(self) -> int:
        return len(self.reasoning)

    @property
    def completion_tokens(self) -> int:
        return len(self.reasoning) + len(self.content) + sum(c.tokens for c in self.tool_calls)

    @property
    def reasoning_text(self) -> str:
        return " ".join(self.reasoning)

    @property
    def content_text(self) -> str:
        return " ".join(self.content)

    def usage(self) -> dict[str, Any]:
        """``usage`` exactly as MiniMax shapes it (``cached_tokens`` only when nonzero)."""
        usage: dict[str, Any] = {
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "total_characters": 0,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return usage


def request_digest(raw: Mapping[str, Any], seed: int) -> bytes:
    """sha256 of the canonical request (sorted keys, delivery fields removed) and the seed.

    Streaming/non-streaming and split/inline versions of one request get the same answer.
    """
    canonical = msgspec.json.encode(
        {k: v for k, v in raw.items() if k not in _DELIVERY_FIELDS}, order="sorted"
    )
    return hashlib.sha256(canonical + b"\x00" + str(seed).encode()).digest()


def plan_completion(
    request: ChatRequest,
    model: ModelInfo,
    directive: Directive,
    config: SimConfig,
    *,
    prompt_tokens: int,
    digest: bytes,
) -> Completion:
    """Decide the whole answer up front; rendering and pacing only deliver it."""
    rng = random.Random(digest)
    thinks = directive.think and not thinking_disabled(request, model)
    reasoning_wanted = (
        (directive.reasoning if directive.reasoning is not None else DEFAULT_REASONING_TOKENS)
        if thinks
        else 0
    )
    reasoning = tuple(rng.choices(WORDS, k=reasoning_wanted))
    tool_names = _tools_to_call(request, directive)
    content_wanted = (
        0 if tool_names else (directive.tokens if directive.tokens is not None else config.default_tokens)
    )
    content = tuple(rng.choices(WORDS, k=content_wanted))
    tool_calls = _tool_calls(request, tool_names, rng)
    tag_split = directive.tag_split if directive.tag_split is not None else rng.randint(0, len(CLOSE_THINK))
    finish = "tool_calls" if tool_calls else "stop"
    reasoning_closed = True

    # Reasoning spends the output budget first, as on MiniMax (hence "send >= 1024" advice).
    budget = request.output_budget
    if budget is not None:
        if len(reasoning) > budget:
            reasoning, reasoning_closed, content, tool_calls = reasoning[:budget], False, (), ()
            finish = "length"
        elif tool_calls and sum(c.tokens for c in tool_calls) > budget - len(reasoning):
            tool_calls, finish = (), "length"
        elif len(content) > budget - len(reasoning):
            content, finish = content[: budget - len(reasoning)], "length"

    output_sensitive = directive.finish == "content_filter"
    if output_sensitive:
        # The filter cuts the answer half-way; what was generated is still billed.
        content, tool_calls, finish = content[: len(content) // 2], (), "content_filter"
    elif directive.finish is not None:
        finish = directive.finish

    return Completion(
        reasoning=reasoning,
        reasoning_closed=reasoning_closed,
        content=content,
        tool_calls=tool_calls,
        finish_reason=finish,
        prompt_tokens=prompt_tokens,
        cached_tokens=min(directive.cached, prompt_tokens),
        output_sensitive=output_sensitive,
        tag_split=min(tag_split, len(CLOSE_THINK)),
    )


def _tools_to_call(request: ChatRequest, directive: Directive) -> list[str]:
    if not directive.tools:
        return []
    available = [t.function.name for t in request.tools or ()]
    for name in directive.tools:
        if name not in available:
            listed = ", ".join(available) if available else "none"
            raise invalid_params(
                f"@sim directive: tool={name!r} names no tool of the request (tools: {listed})"
            )
    if request.tool_choice == "none":
        return []
    # Once tool results follow the user's turn, the model answers in text: an agent loop ends.
    for message in reversed(request.messages):
        if message.get("role") == "user":
            break
        if message.get("role") == "tool":
            return []
    return list(directive.tools)


def _tool_calls(request: ChatRequest, names: list[str], rng: random.Random) -> tuple[ToolCall, ...]:
    if not names:
        return ()
    schemas = {t.function.name: t.function.parameters for t in request.tools or ()}
    # MiniMax ids look like call_function_<random>_<n>; the random part is shared by one turn.
    stem = "".join(rng.choices(_ID_CHARS, k=10))
    calls = []
    for n, name in enumerate(names, start=1):
        arguments = msgspec.json.encode(value_for_schema(schemas[name], rng)).decode()
        calls.append(
            ToolCall(
                id=f"call_function_{stem}_{n}",
                name=name,
                arguments=arguments,
                pieces=_split(arguments, rng),
                tokens=count_text_tokens(arguments),
            )
        )
    return tuple(calls)


def _split(text: str, rng: random.Random) -> tuple[str, ...]:
    """Cut ``text`` into 2-4 pieces at request-dependent places, so clients must reassemble."""
    pieces = min(len(text), rng.randint(2, 4))
    if pieces < 2:
        return (text,)
    cuts = sorted(rng.sample(range(1, len(text)), pieces - 1))
    bounds = [0, *cuts, len(text)]
    return tuple(text[a:b] for a, b in itertools.pairwise(bounds))
