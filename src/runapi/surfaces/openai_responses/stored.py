"""Shapes for stored responses: `response.deleted`, `response.input_tokens`, and the input-items
list of `GET /v1/responses/{id}/input_items` (protocols.md §2.1, §2.6).

Input items exist only for responses created with `store: true` (runapi-contract §3.2). They are
kept as canonical messages and rendered here; item ids derive from the response id and the item's
position, so `after` cursors stay valid across calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from runapi.canonical import (
    Completion,
    ImagePart,
    Message,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from runapi.errors import InvalidRequest
from runapi.surfaces.openai_responses import response as wire
from runapi.surfaces.openai_responses.render import function_call_item, message_item, reasoning_item
from runapi.surfaces.reasoning_signature import ReasoningSigner

_encoder = msgspec.json.Encoder()
MAX_LIMIT = 100


def render_deleted(response_id: str) -> bytes:
    return _encoder.encode(wire.DeletedOut(response_id))


def render_input_tokens(input_tokens: int) -> bytes:
    return _encoder.encode(wire.InputTokensOut(input_tokens))


def assistant_message(completion: Completion) -> Message:
    """A finished response as the assistant turn that `previous_response_id` puts back in front
    of the next input (§2.6)."""
    return Message(role="assistant", parts=tuple(completion.parts))


def input_items(
    messages: Sequence[Message], response_id: str, signer: ReasoningSigner
) -> list[wire.InputItemOut]:
    """Canonical input turns → Responses items, oldest first."""
    base = response_id.removeprefix("resp_")
    items: list[wire.InputItemOut] = []

    def next_id(prefix: str) -> str:
        return f"{prefix}_{base}_in{len(items)}"

    for message in messages:
        if message.role == "user":
            content: list[wire.InputTextOut | wire.InputImageOut] = []
            for part in message.parts:
                if isinstance(part, TextPart):
                    content.append(wire.InputTextOut(part.text))
                elif isinstance(part, ImagePart):
                    content.append(wire.InputImageOut(part.url, part.detail or "auto"))
            items.append(
                wire.InputMessageOut(id=next_id("msg"), status="completed", role="user", content=content)
            )
            continue
        for part in message.parts:
            if isinstance(part, ToolResultPart):
                items.append(
                    wire.FunctionCallOutputOut(
                        id=next_id("fco"), call_id=part.tool_call_id, output=part.content, status="completed"
                    )
                )
            elif isinstance(part, ReasoningPart):
                items.append(reasoning_item(next_id("rs"), part.text, signer, "completed"))
            elif isinstance(part, TextPart):
                items.append(message_item(next_id("msg"), part.text, "completed"))
            elif isinstance(part, ToolCallPart):
                items.append(function_call_item(next_id("fc"), part, "completed"))
    return items


def render_input_items(
    items: Sequence[wire.InputItemOut],
    *,
    after: str | None = None,
    limit: int = 20,
    order: Literal["asc", "desc"] = "desc",
) -> bytes:
    """One page of input items; `order` defaults to `desc` (newest first), as OpenAI's does."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}.", param="limit")
    ordered = list(items) if order == "asc" else list(reversed(items))
    start = 0
    if after is not None:
        ids = [item.id for item in ordered]
        if after not in ids:
            raise InvalidRequest(f"No input item with id '{after}'.", param="after")
        start = ids.index(after) + 1
    page = ordered[start : start + limit]
    return _encoder.encode(
        wire.InputItemListOut(
            data=page,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
            has_more=start + limit < len(ordered),
        )
    )
