"""Canonical `Completion` → Anthropic Message object (pure; protocols.md §3.5, §6.4-§6.6)."""

from __future__ import annotations

from typing import Any

import msgspec

from runapi.canonical import Completion, ReasoningPart, TextPart, ToolCallPart, Usage
from runapi.canonical.codec import ResponseMeta
from runapi.surfaces.anthropic_messages import response as wire
from runapi.surfaces.reasoning_signature import ReasoningSigner

_encoder = msgspec.json.Encoder()
_any_decoder = msgspec.json.Decoder()

# §6.5; a `stop` with tool calls present is reported as `tool_use`.
_STOP_REASONS = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(completion: Completion) -> str:
    reason = _STOP_REASONS.get(completion.finish_reason or "stop", "end_turn")
    if reason == "end_turn" and completion.tool_calls:
        return "tool_use"
    return reason


def stop_sequence(completion: Completion) -> str | None:
    return completion.stop_sequence if completion.finish_reason == "stop_sequence" else None


def tool_input(arguments: str) -> Any:
    """`arguments` (a JSON string) → `tool_use.input` (an object). Invalid or non-object JSON is
    wrapped as `{"_raw": ...}`, because Anthropic clients require an object (§6.4)."""
    if not arguments.strip():
        return {}
    try:
        value = _any_decoder.decode(arguments)
    except msgspec.DecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


def tool_input_json(arguments: str) -> str:
    """The JSON text of `tool_input(arguments)`: the model's own bytes when they are an object."""
    try:
        value = _any_decoder.decode(arguments)
    except msgspec.DecodeError:
        value = None
    if isinstance(value, dict):
        return arguments
    return _encoder.encode({"_raw": arguments}).decode()


def usage_out(usage: Usage | None, cost_usd: float | None) -> wire.UsageOut:
    """Anthropic semantics: `input_tokens` is uncached input; reads and writes are separate (§6.6)."""
    if usage is None:
        return wire.UsageOut(0, 0, 0, 0, cost=cost_usd)
    details = wire.OutputTokensDetails(usage.reasoning_tokens) if usage.reasoning_tokens else None
    return wire.UsageOut(
        input_tokens=usage.uncached_input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_input_tokens=usage.cache_write_tokens,
        cache_read_input_tokens=usage.cached_input_tokens,
        output_tokens_details=details,
        cost=cost_usd,
    )


def content_blocks(completion: Completion, signer: ReasoningSigner) -> list[wire.ContentOut]:
    """Blocks in the order the model produced them (interleaved thinking keeps its place)."""
    blocks: list[wire.ContentOut] = []
    for part in completion.parts:
        if isinstance(part, ReasoningPart):
            blocks.append(wire.ThinkingOut(thinking=part.text, signature=signer.sign(part.text)))
        elif isinstance(part, TextPart):
            blocks.append(wire.TextOut(part.text))
        elif isinstance(part, ToolCallPart):
            blocks.append(wire.ToolUseOut(id=part.id, name=part.name, input=tool_input(part.arguments)))
    return blocks


def message(completion: Completion, meta: ResponseMeta, signer: ReasoningSigner) -> wire.MessageOut:
    return wire.MessageOut(
        id=meta.surface_id,
        role="assistant",
        model=meta.model,
        content=content_blocks(completion, signer),
        stop_reason=stop_reason(completion),
        stop_sequence=stop_sequence(completion),
        usage=usage_out(completion.usage, meta.cost_usd),
    )


def render(completion: Completion, meta: ResponseMeta, signer: ReasoningSigner) -> bytes:
    return _encoder.encode(message(completion, meta, signer))
