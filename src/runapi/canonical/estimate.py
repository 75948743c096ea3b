"""A fast upper-bound estimate of input tokens, for holds and limiter admission.

It runs on every request, so it reads lengths only. BPE tokenizers average about four characters
per token on English text; dividing by three keeps the estimate above the real count for most
text, so holds rarely understate (the ledger still posts the exact upstream usage).
"""

from __future__ import annotations

import msgspec

from runapi.canonical.types import (
    ChatRequest,
    ImagePart,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)

_PER_MESSAGE = 4
_PER_IMAGE = 1600
_encoder = msgspec.json.Encoder()


def estimate_input_tokens(request: ChatRequest) -> int:
    chars = sum(len(s) for s in request.system)
    tokens = _PER_MESSAGE * (len(request.messages) + (1 if request.system else 0)) + 3
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, TextPart | ReasoningPart):
                chars += len(part.text)
            elif isinstance(part, ToolCallPart):
                chars += len(part.name) + len(part.arguments)
            elif isinstance(part, ToolResultPart):
                chars += len(part.content)
            elif isinstance(part, ImagePart):
                tokens += _PER_IMAGE
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description or "") + len(_encoder.encode(tool.parameters))
        tokens += 10
    return tokens + (chars + 2) // 3


def estimate_output_tokens(chars: int) -> int:
    """Tokens for delivered output when upstream usage never arrived (a cut stream)."""
    return (chars + 3) // 4
