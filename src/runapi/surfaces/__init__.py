"""Client dialects. Each module is a codec over the canonical model; nothing more."""

from __future__ import annotations

from typing import Any

import msgspec


def request_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the request bodies this gateway decodes, generated from the very wire
    types the surfaces decode with, so published docs (model skills) cannot drift from them."""
    from runapi.surfaces.anthropic_messages.request import MessagesRequest
    from runapi.surfaces.openai_chat.wire import ChatCompletionRequest
    from runapi.surfaces.openai_responses.request import ResponsesRequest

    return {
        "chat.completions": msgspec.json.schema(ChatCompletionRequest),
        "responses": msgspec.json.schema(ResponsesRequest),
        "messages": msgspec.json.schema(MessagesRequest),
    }
