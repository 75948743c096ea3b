"""The ``@sim`` directive: per-request behaviour written into the prompt.

A line of the last user message that starts with ``@sim`` holds space-separated ``key=value``
pairs. Unknown keys are ignored (so newer prompts run on older simulators); values of known
keys are parsed strictly, and a bad one is a 400 that says exactly what was wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import SimError, invalid_params

__all__ = ["Directive", "find_directive_lines", "parse_directive"]

_INT_RE = re.compile(r"\d+")
_FLOAT_RE = re.compile(r"\d+(\.\d+)?|\.\d+")
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_FINISHES = ("stop", "length", "content_filter")


@dataclass(slots=True)
class Directive:
    """Everything a ``@sim`` line can ask for; None/empty means "not asked"."""

    tokens: int | None = None
    reasoning: int | None = None
    think: bool = True
    ttft_ms: float | None = None
    tps: float | None = None
    chunk_tokens: int | None = None
    error_status: int | None = None
    base_resp_code: int | None = None
    retry_after: int | None = None
    error_after: int | None = None
    error_code: int = 1000
    disconnect_after: int | None = None
    no_done: bool = False
    tools: list[str] = field(default_factory=list)
    cached: int = 0
    finish: str | None = None
    tag_split: int | None = None


def _bad(key: str, value: str, expected: str) -> SimError:
    return invalid_params(f"@sim directive: {key}={value!r} is not valid: expected {expected}")


def _int(key: str, value: str) -> int:
    if not _INT_RE.fullmatch(value):
        raise _bad(key, value, "a non-negative integer")
    return int(value)


def _positive_int(key: str, value: str) -> int:
    number = _int(key, value)
    if number < 1:
        raise _bad(key, value, "an integer >= 1")
    return number


def _float(key: str, value: str) -> float:
    if not _FLOAT_RE.fullmatch(value) or not math.isfinite(number := float(value)):
        raise _bad(key, value, "a non-negative number")
    return number


def _flag(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise _bad(key, value, "1/0, true/false, yes/no or on/off")


def _set_error(d: Directive, key: str, value: str) -> None:
    if value.startswith("base_resp:"):
        d.base_resp_code = _positive_int(key, value.removeprefix("base_resp:"))
        d.error_status = None
        return
    status = _int(key, value) if _INT_RE.fullmatch(value) else None
    if status is None or not 400 <= status <= 599:
        raise _bad(key, value, "an HTTP status 400-599 or base_resp:CODE")
    d.error_status, d.base_resp_code = status, None


def _set_tools(d: Directive, key: str, value: str) -> None:
    names = value.split(",")
    for name in names:
        if not _NAME_RE.fullmatch(name):
            raise _bad(key, value, "comma-separated tool names")
    d.tools.extend(names)


def _set_think(d: Directive, key: str, value: str) -> None:
    d.think = _flag(key, value)


def _set_finish(d: Directive, key: str, value: str) -> None:
    if value not in _FINISHES:
        raise _bad(key, value, " or ".join(_FINISHES))
    d.finish = value


def _setter(attr: str, parse: Callable[[str, str], Any]) -> Callable[[Directive, str, str], None]:
    def set_value(d: Directive, key: str, value: str) -> None:
        setattr(d, attr, parse(key, value))

    return set_value


_KEYS: Mapping[str, Callable[[Directive, str, str], None]] = {
    "tokens": _setter("tokens", _int),
    "reasoning": _setter("reasoning", _int),
    "think": _set_think,
    "ttft_ms": _setter("ttft_ms", _float),
    "tps": _setter("tps", _float),
    "chunk_tokens": _setter("chunk_tokens", _positive_int),
    "error": _set_error,
    "retry_after": _setter("retry_after", _int),
    "error_after": _setter("error_after", _int),
    "error_code": _setter("error_code", _positive_int),
    "disconnect_after": _setter("disconnect_after", _int),
    "no_done": _setter("no_done", _flag),
    "tool": _set_tools,
    "cached": _setter("cached", _int),
    "finish": _set_finish,
    "tag_split": _setter("tag_split", _int),
}


def find_directive_lines(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``@sim`` lines of the last user message (string content or any text part)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts = [content]
        elif isinstance(content, list):
            texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        else:
            texts = []
        return [
            line.strip()
            for text in texts
            for line in text.splitlines()
            if line.strip() == "@sim" or line.strip().startswith(("@sim ", "@sim\t"))
        ]
    return []


def parse_directive(messages: Sequence[Mapping[str, Any]]) -> Directive:
    """Parse every ``@sim`` line of the last user message; later keys override earlier ones
    (``tool`` accumulates)."""
    directive = Directive()
    for line in find_directive_lines(messages):
        for item in line.split()[1:]:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise invalid_params(f"@sim directive: {item!r} is not a key=value pair")
            setter = _KEYS.get(key)
            if setter is not None:
                setter(directive, key, value)
    return directive
