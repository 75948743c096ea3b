"""Minimal request schemas, for building skills when the surfaces' schemas are not at hand.

The gateway builds its skills from the surfaces' own wire types (passed in by the app). These
small structs cover the fields a skill documents, in the same msgspec-generated shape, so the
offline CLI and the tests can build a skill without the app. Prefer the real schemas whenever
they are available: these do not know every field the surfaces accept.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class _ChatMessage(msgspec.Struct, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[_ChatMessage]
    max_completion_tokens: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    callback_url: str | None = None
    webhook_events_filter: list[str] | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    store: bool | None = None
    background: bool | None = None
    previous_response_id: str | None = None
    callback_url: str | None = None
    webhook_events_filter: list[str] | None = None


class _AnthropicMessage(msgspec.Struct, kw_only=True):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[_AnthropicMessage]
    max_tokens: int
    system: str | list[dict[str, Any]] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    callback_url: str | None = None
    webhook_events_filter: list[str] | None = None


def fallback_request_schemas() -> dict[str, dict[str, Any]]:
    return {
        "chat.completions": msgspec.json.schema(ChatCompletionRequest),
        "responses": msgspec.json.schema(ResponsesRequest),
        "messages": msgspec.json.schema(MessagesRequest),
    }
