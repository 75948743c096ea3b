"""MiniMax's raw tool-call syntax in `content`, turned into tool calls (protocols.md §5.5).

A MiniMax model served without a tool parser (vLLM or SGLang started without
`--tool-call-parser minimax_m2`) writes its calls into the text:

    <minimax:tool_call>
    <invoke name="get_weather">
    <parameter name="city">Paris</parameter>
    </invoke>
    </minimax:tool_call>

`ToolTagParser` takes text fragments in order and gives back the text to show and the calls found.
A block is held back until it closes (it can be split across chunks anywhere); outside a block only
what could still become the opening tag is held back. Only calls of tools the request declared are
taken: a block naming anything else is left in the text, where it came from.

Parameter values are text, typed with the tool's JSON schema as MiniMax's guide does: `null` is
null, integer, number and boolean are parsed, object and array decoded as JSON, a type not known
here tried as JSON; a value that does not parse stays text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from runapi.canonical import ToolSpec
from runapi.providers.think import held_tag_prefix

OPEN_TAG = "<minimax:tool_call>"
CLOSE_TAG = "</minimax:tool_call>"
_NAME = r"""name\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)\s*>"""
_INVOKE = re.compile(r"<invoke\s+" + _NAME + r"(.*?)</invoke>", re.DOTALL)
_PARAMETER = re.compile(r"<parameter\s+" + _NAME + r"(.*?)</parameter>", re.DOTALL)
_json = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


class RawToolCall(msgspec.Struct, frozen=True):
    name: str
    arguments: str  # a JSON object


class ToolTagParser:
    __slots__ = ("_after_block", "_buf", "_in_block", "_properties")

    def __init__(self, tools: Sequence[ToolSpec]) -> None:
        self._properties: dict[str, dict[str, Any]] = {}
        for tool in tools:
            props = tool.parameters.get("properties")
            self._properties[tool.name] = props if isinstance(props, dict) else {}
        self._buf = ""
        self._in_block = False
        self._after_block = False  # the line break after a block is template noise: dropped

    def feed(self, fragment: str) -> tuple[str, list[RawToolCall]]:
        buf, self._buf = self._buf + fragment, ""
        text: list[str] = []
        calls: list[RawToolCall] = []
        while buf:
            if self._after_block:
                buf = buf.lstrip("\r\n")
                if not buf:
                    break
                self._after_block = False
            if not self._in_block:
                start = buf.find(OPEN_TAG)
                if start < 0:
                    held = held_tag_prefix(buf, OPEN_TAG)
                    if held:
                        self._buf, buf = buf[-held:], buf[:-held]
                    text.append(buf)
                    break
                text.append(buf[:start])
                buf = buf[start + len(OPEN_TAG) :]
                self._in_block = True
                continue
            end = buf.find(CLOSE_TAG)
            if end < 0:
                self._buf = buf  # the block so far
                break
            block, buf = buf[:end], buf[end + len(CLOSE_TAG) :]
            self._in_block = False
            found = self._calls(block)
            if found is None:
                text.append(OPEN_TAG + block + CLOSE_TAG)
            else:
                calls.extend(found)
                self._after_block = True
        return "".join(text), calls

    def finish(self) -> str:
        """The text still held back: a block that never closed stays text."""
        buf, self._buf = self._buf, ""
        self._after_block = False
        if self._in_block:
            self._in_block = False
            return OPEN_TAG + buf
        return buf

    def _calls(self, block: str) -> list[RawToolCall] | None:
        """The block's calls; None when it has none, or names a tool the request did not declare."""
        calls: list[RawToolCall] = []
        for invoke in _INVOKE.finditer(block):
            name = _unquote(invoke.group(1))
            properties = self._properties.get(name)
            if properties is None:
                return None
            arguments: dict[str, Any] = {}
            for parameter in _PARAMETER.finditer(invoke.group(2)):
                key = _unquote(parameter.group(1))
                schema = properties.get(key)
                declared = schema.get("type") if isinstance(schema, dict) else "string"
                arguments[key] = typed_value(parameter.group(2).strip(), declared)
            calls.append(RawToolCall(name, _encode(arguments).decode()))
        return calls or None


def typed_value(text: str, declared: Any) -> Any:
    """A parameter's text as the JSON value its schema type says it is."""
    if text.lower() == "null":
        return None
    kinds = declared if isinstance(declared, list) else [declared]
    for kind in kinds:
        if kind in ("string", None) and len(kinds) == 1:
            return text
        value = _parse(text, kind)
        if value is not _UNPARSED:
            return value
    return text


_UNPARSED: Any = object()


def _parse(text: str, kind: Any) -> Any:
    lowered = text.lower()
    if kind == "boolean":
        return {"true": True, "false": False}.get(lowered, _UNPARSED)
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            return _UNPARSED
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return _UNPARSED
        return int(number) if number.is_integer() and "." not in text and "e" not in lowered else number
    if kind == "string":
        return _UNPARSED  # only as a last resort, after the other types of a union
    try:  # object, array, or a type not known here
        return _json.decode(text)
    except msgspec.DecodeError:
        return _UNPARSED


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


__all__ = ["CLOSE_TAG", "OPEN_TAG", "RawToolCall", "ToolTagParser", "typed_value"]
