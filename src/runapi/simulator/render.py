"""The non-streaming ``chat.completion`` body, shaped exactly as MiniMax sends it."""

from __future__ import annotations

from typing import Any

from .generation import CLOSE_THINK, Completion

__all__ = ["BASE_RESP_OK", "completion_body", "reasoning_detail"]

BASE_RESP_OK: dict[str, Any] = {"status_code": 0, "status_msg": ""}
_SENSITIVE_OTHER = 7  # MiniMax's sensitive-type code for "other"


def reasoning_detail(text: str, *, first: bool = True) -> dict[str, Any]:
    """One ``reasoning_details`` entry. Stream fragments after the first omit ``id`` and ``format``:
    the OpenAI SDK's stream accumulator concatenates every repeated string field but ``type``."""
    if first:
        return {
            "type": "reasoning.text",
            "id": "reasoning-text-1",
            "format": "MiniMax-response-v1",
            "index": 0,
            "text": text,
        }
    return {"type": "reasoning.text", "index": 0, "text": text}


def inline_content(completion: Completion) -> str:
    """``content`` without ``reasoning_split``: the reasoning leads, wrapped in ``<think>`` tags."""
    if not completion.reasoning:
        return completion.content_text
    close = CLOSE_THINK if completion.reasoning_closed else ""
    return f"<think>\n{completion.reasoning_text}{close}{completion.content_text}"


def completion_body(
    completion: Completion, *, response_id: str, created: int, model: str, reasoning_split: bool
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "content": completion.content_text if reasoning_split else inline_content(completion),
        "role": "assistant",
        "name": "MiniMax AI",
        "audio_content": "",
    }
    if reasoning_split and completion.reasoning:
        message["reasoning_content"] = completion.reasoning_text
        message["reasoning_details"] = [reasoning_detail(completion.reasoning_text)]
    if completion.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls
        ]
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"finish_reason": completion.finish_reason, "index": 0, "message": message}],
        "usage": completion.usage(),
        "input_sensitive": False,
        "output_sensitive": completion.output_sensitive,
        "base_resp": BASE_RESP_OK,
    }
    if completion.output_sensitive:
        body["output_sensitive_type"] = _SENSITIVE_OTHER
    return body
