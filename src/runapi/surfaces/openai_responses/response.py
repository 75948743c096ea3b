"""OpenAI Responses response object, output items and stream events (protocols.md §2.4, §2.5).

The `type` (or `object`) is the msgspec tag, so it leads each JSON object. Event structs put
`sequence_number` first after it.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct

ItemStatus = Literal["in_progress", "completed", "incomplete"]
ResponseStatus = Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]

# ---------------------------------------------------------------- output items


class OutputTextOut(Struct, tag="output_text", tag_field="type"):
    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class ReasoningTextOut(Struct, tag="reasoning_text", tag_field="type"):
    text: str


class SummaryTextOut(Struct, tag="summary_text", tag_field="type"):
    text: str


class MessageItemOut(Struct, tag="message", tag_field="type"):
    id: str
    status: ItemStatus
    role: Literal["assistant"]
    content: list[OutputTextOut]


class FunctionCallOut(Struct, tag="function_call", tag_field="type"):
    id: str
    call_id: str
    name: str
    arguments: str
    status: ItemStatus


class ReasoningItemOut(Struct, tag="reasoning", tag_field="type"):
    id: str
    summary: list[SummaryTextOut]
    content: list[ReasoningTextOut]
    encrypted_content: str | None
    status: ItemStatus


OutputItem = MessageItemOut | FunctionCallOut | ReasoningItemOut


# ---------------------------------------------------------------- input items (GET .../input_items)


class InputTextOut(Struct, tag="input_text", tag_field="type"):
    text: str


class InputImageOut(Struct, tag="input_image", tag_field="type"):
    image_url: str
    detail: str


class InputMessageOut(Struct, tag="message", tag_field="type"):
    id: str
    status: ItemStatus
    role: Literal["user"]
    content: list[InputTextOut | InputImageOut]


class FunctionCallOutputOut(Struct, tag="function_call_output", tag_field="type"):
    id: str
    call_id: str
    output: str
    status: ItemStatus


# Assistant turns in the input list use the output item shapes.
InputItemOut = InputMessageOut | FunctionCallOutputOut | MessageItemOut | FunctionCallOut | ReasoningItemOut


class InputItemListOut(Struct, tag="list", tag_field="object"):
    data: list[InputItemOut]
    first_id: str | None
    last_id: str | None
    has_more: bool


# ---------------------------------------------------------------- the response object


class InputTokensDetails(Struct):
    cached_tokens: int
    # openai-python 3.51.0 validation fails without it, so it is always sent (§2.4).
    cache_write_tokens: int


class OutputTokensDetails(Struct):
    reasoning_tokens: int


class UsageOut(Struct, omit_defaults=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int
    cost: float | None = None  # USD, our extension (runapi-contract §8.7)


class IncompleteDetails(Struct):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseErrorOut(Struct):
    code: str  # server_error | rate_limit_exceeded | invalid_prompt (§2.4)
    message: str


class FunctionToolChoiceOut(Struct, tag="function", tag_field="type", frozen=True):
    name: str


class TextFormatOut(Struct, omit_defaults=True, frozen=True):
    type: str
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class TextOut(Struct):
    format: TextFormatOut


class ReasoningOut(Struct):
    effort: str | None = None
    summary: str | None = None


class ResponseOut(Struct, tag="response", tag_field="object", kw_only=True):
    id: str
    created_at: int
    status: ResponseStatus
    background: bool
    error: ResponseErrorOut | None
    incomplete_details: IncompleteDetails | None
    # Inputs are never kept (runapi-contract §3.2), so instructions and tool definitions are not echoed.
    instructions: None = None
    max_output_tokens: int | None
    model: str
    output: list[OutputItem]
    parallel_tool_calls: bool
    previous_response_id: str | None
    reasoning: ReasoningOut
    store: bool
    temperature: float | None
    text: TextOut
    tool_choice: str | FunctionToolChoiceOut
    tools: list[Any] = []
    top_p: float | None
    truncation: str = "disabled"
    usage: UsageOut | None
    user: str | None
    metadata: dict[str, str]


class DeletedOut(Struct, tag="response.deleted", tag_field="object"):
    id: str
    deleted: bool = True


class InputTokensOut(Struct, tag="response.input_tokens", tag_field="object"):
    input_tokens: int


# ---------------------------------------------------------------- stream events


class _Lifecycle(Struct, tag_field="type"):
    sequence_number: int
    response: ResponseOut


class ResponseCreated(_Lifecycle, tag="response.created"):
    pass


class ResponseInProgress(_Lifecycle, tag="response.in_progress"):
    pass


class ResponseQueued(_Lifecycle, tag="response.queued"):
    pass


class ResponseCompleted(_Lifecycle, tag="response.completed"):
    pass


class ResponseIncomplete(_Lifecycle, tag="response.incomplete"):
    pass


class ResponseFailed(_Lifecycle, tag="response.failed"):
    pass


class OutputItemAdded(Struct, tag="response.output_item.added", tag_field="type"):
    sequence_number: int
    output_index: int
    item: OutputItem


class OutputItemDone(Struct, tag="response.output_item.done", tag_field="type"):
    sequence_number: int
    output_index: int
    item: OutputItem


class ContentPartAdded(Struct, tag="response.content_part.added", tag_field="type"):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    part: OutputTextOut | ReasoningTextOut


class ContentPartDone(Struct, tag="response.content_part.done", tag_field="type"):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    part: OutputTextOut | ReasoningTextOut


class OutputTextDelta(Struct, tag="response.output_text.delta", tag_field="type"):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[Any] = []


class OutputTextDone(Struct, tag="response.output_text.done", tag_field="type"):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[Any] = []


class ReasoningTextDelta(Struct, tag="response.reasoning_text.delta", tag_field="type"):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    delta: str


class ReasoningTextDone(Struct, tag="response.reasoning_text.done", tag_field="type"):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    text: str


class FunctionCallArgumentsDelta(Struct, tag="response.function_call_arguments.delta", tag_field="type"):
    sequence_number: int
    item_id: str
    output_index: int
    delta: str


class FunctionCallArgumentsDone(Struct, tag="response.function_call_arguments.done", tag_field="type"):
    sequence_number: int
    item_id: str
    output_index: int
    arguments: str
    name: str  # not in openai-python 3.51.0's type; harmless, and other clients read it (§2.5)


class ErrorEvent(Struct, tag="error", tag_field="type"):
    sequence_number: int
    code: str | None
    message: str
    param: str | None


StreamEvent = (
    ResponseCreated
    | ResponseInProgress
    | ResponseQueued
    | ResponseCompleted
    | ResponseIncomplete
    | ResponseFailed
    | OutputItemAdded
    | OutputItemDone
    | ContentPartAdded
    | ContentPartDone
    | OutputTextDelta
    | OutputTextDone
    | ReasoningTextDelta
    | ReasoningTextDone
    | FunctionCallArgumentsDelta
    | FunctionCallArgumentsDone
    | ErrorEvent
)
