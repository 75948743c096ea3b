"""The internal request/event model that every surface and every provider maps to.

A surface decodes its dialect into a `ChatRequest`; a provider turns a `ChatRequest` into a stream
of `Event`s; the pipeline folds events into a `Completion` (for sync bodies and task records) and
hands them to the surface's stream encoder. Nothing dialect-specific lives here.
"""

from runapi.canonical.types import (
    ChatRequest,
    Completion,
    Event,
    Finished,
    FinishReason,
    ImagePart,
    Message,
    Part,
    ReasoningControl,
    ReasoningDelta,
    ReasoningPart,
    ResponseFormat,
    Role,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    UpstreamInfo,
    Usage,
    UsageReport,
)

__all__ = [
    "ChatRequest",
    "Completion",
    "Event",
    "FinishReason",
    "Finished",
    "ImagePart",
    "Message",
    "Part",
    "ReasoningControl",
    "ReasoningDelta",
    "ReasoningPart",
    "ResponseFormat",
    "Role",
    "TextDelta",
    "TextPart",
    "ToolCallDelta",
    "ToolCallPart",
    "ToolCallStart",
    "ToolChoice",
    "ToolResultPart",
    "ToolSpec",
    "UpstreamInfo",
    "Usage",
    "UsageReport",
]
