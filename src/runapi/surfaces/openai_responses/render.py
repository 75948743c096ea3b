"""Canonical `Completion` → the Responses `Response` object (pure; protocols.md §2.4, §6.4-§6.6).

Item ids derive from the response id and the item's output index (`msg_<ulid>_<n>`), so the
streamed items, the final object and a later `GET /v1/responses/{id}` all agree.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from runapi.canonical import Completion, ReasoningPart, TextPart, ToolCallPart, Usage
from runapi.canonical.codec import Decoded, ResponseMeta
from runapi.errors import ErrorKind, RunapiError
from runapi.surfaces.openai_responses import response as wire
from runapi.surfaces.openai_responses.sealed_reasoning import seal
from runapi.surfaces.reasoning_signature import ReasoningSigner

_encoder = msgspec.json.Encoder()

_INCOMPLETE: dict[str, wire.IncompleteDetails] = {
    "length": wire.IncompleteDetails("max_output_tokens"),
    "content_filter": wire.IncompleteDetails("content_filter"),
}


def item_id(meta: ResponseMeta, prefix: str, output_index: int) -> str:
    return f"{prefix}_{meta.surface_id.removeprefix('resp_')}_{output_index}"


def incomplete_details(finish_reason: str | None) -> wire.IncompleteDetails | None:
    """`length` and `content_filter` make the response `incomplete`; every other finish,
    `stop_sequence` included, is `completed` (§6.5)."""
    return _INCOMPLETE.get(finish_reason or "")


def usage_out(usage: Usage | None, cost_usd: float | None) -> wire.UsageOut | None:
    """OpenAI semantics: `input_tokens` includes cached tokens, `output_tokens` reasoning (§6.6)."""
    if usage is None:
        return None
    return wire.UsageOut(
        input_tokens=usage.input_tokens,
        input_tokens_details=wire.InputTokensDetails(
            cached_tokens=usage.cached_input_tokens, cache_write_tokens=usage.cache_write_tokens
        ),
        output_tokens=usage.output_tokens,
        output_tokens_details=wire.OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=usage.total_tokens,
        cost=cost_usd,
    )


def error_code(error: RunapiError) -> str:
    """The Responses `error.code` of a failed response (§2.4)."""
    if error.kind is ErrorKind.RATE_LIMIT:
        return "rate_limit_exceeded"
    if error.kind is ErrorKind.INVALID_REQUEST:
        return "invalid_prompt"
    return "server_error"


# ---------------------------------------------------------------- items


def reasoning_item(
    item_id: str, text: str, signer: ReasoningSigner, status: wire.ItemStatus
) -> wire.ReasoningItemOut:
    return wire.ReasoningItemOut(
        id=item_id,
        summary=[],
        content=[wire.ReasoningTextOut(text)],
        # Always sealed, so stateless clients (`store: false`) can hand it back next turn (§6.7).
        encrypted_content=seal(text, signer),
        status=status,
    )


def message_item(item_id: str, text: str, status: wire.ItemStatus) -> wire.MessageItemOut:
    return wire.MessageItemOut(
        id=item_id, status=status, role="assistant", content=[wire.OutputTextOut(text)]
    )


def function_call_item(item_id: str, call: ToolCallPart, status: wire.ItemStatus) -> wire.FunctionCallOut:
    # `call_id` is the upstream's tool-call id, the one the client echoes back (§6.4).
    return wire.FunctionCallOut(
        id=item_id, call_id=call.id, name=call.name, arguments=call.arguments, status=status
    )


def output_items(
    completion: Completion, meta: ResponseMeta, signer: ReasoningSigner
) -> list[wire.OutputItem]:
    """One item per part, in the model's order. When the response is incomplete the last item
    is the one that was cut off."""
    items: list[wire.OutputItem] = []
    for index, part in enumerate(completion.parts):
        if isinstance(part, ReasoningPart):
            items.append(reasoning_item(item_id(meta, "rs", index), part.text, signer, "completed"))
        elif isinstance(part, TextPart):
            items.append(message_item(item_id(meta, "msg", index), part.text, "completed"))
        elif isinstance(part, ToolCallPart):
            items.append(function_call_item(item_id(meta, "fc", index), part, "completed"))
    if items and incomplete_details(completion.finish_reason) is not None:
        items[-1].status = "incomplete"
    return items


# ---------------------------------------------------------------- the response object


class Echo(msgspec.Struct, frozen=True, kw_only=True):
    """Request settings the Response object reports back. Only scalar settings: inputs, tool
    definitions and instructions are never kept (runapi-contract §3.2)."""

    background: bool = False
    store: bool = False
    previous_response_id: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    parallel_tool_calls: bool = True
    tool_choice: str | wire.FunctionToolChoiceOut = "auto"
    text_format: wire.TextFormatOut = wire.TextFormatOut("text")
    reasoning_effort: str | None = None
    user: str | None = None
    metadata: dict[str, str] = {}


DEFAULT_ECHO = Echo()


def echo_of(decoded: Decoded | None) -> Echo:
    if decoded is None:
        return DEFAULT_ECHO
    req, gateway = decoded.request, decoded.gateway
    choice: str | wire.FunctionToolChoiceOut = "auto"
    if req.tool_choice is not None:
        if req.tool_choice.mode == "tool" and req.tool_choice.name:
            choice = wire.FunctionToolChoiceOut(req.tool_choice.name)
        else:
            choice = req.tool_choice.mode
    fmt = wire.TextFormatOut("text")
    if req.response_format is not None:
        rf = req.response_format
        fmt = wire.TextFormatOut(rf.type, name=rf.name, schema=rf.schema, strict=rf.strict)
    return Echo(
        background=gateway.background,
        store=gateway.store_input,
        previous_response_id=gateway.previous_response_id,
        max_output_tokens=req.max_output_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        parallel_tool_calls=req.parallel_tool_calls is not False,
        tool_choice=choice,
        text_format=fmt,
        reasoning_effort=req.reasoning.effort if req.reasoning is not None else None,
        user=req.user,
        metadata=dict(req.metadata),
    )


def response_object(
    meta: ResponseMeta,
    echo: Echo,
    *,
    status: wire.ResponseStatus,
    output: Iterable[wire.OutputItem] = (),
    usage: wire.UsageOut | None = None,
    error: wire.ResponseErrorOut | None = None,
    incomplete: wire.IncompleteDetails | None = None,
) -> wire.ResponseOut:
    return wire.ResponseOut(
        id=meta.surface_id,
        created_at=meta.created,
        status=status,
        background=echo.background,
        error=error,
        incomplete_details=incomplete,
        max_output_tokens=echo.max_output_tokens,
        model=meta.model,
        output=list(output),
        parallel_tool_calls=echo.parallel_tool_calls,
        previous_response_id=echo.previous_response_id,
        reasoning=wire.ReasoningOut(effort=echo.reasoning_effort),
        store=echo.store,
        temperature=echo.temperature,
        text=wire.TextOut(echo.text_format),
        tool_choice=echo.tool_choice,
        top_p=echo.top_p,
        usage=usage,
        user=echo.user,
        metadata=echo.metadata,
    )


def completed_response(
    completion: Completion, meta: ResponseMeta, signer: ReasoningSigner, echo: Echo = DEFAULT_ECHO
) -> wire.ResponseOut:
    incomplete = incomplete_details(completion.finish_reason)
    return response_object(
        meta,
        echo,
        status="incomplete" if incomplete is not None else "completed",
        output=output_items(completion, meta, signer),
        usage=usage_out(completion.usage, meta.cost_usd),
        incomplete=incomplete,
    )


def render(
    completion: Completion, meta: ResponseMeta, signer: ReasoningSigner, decoded: Decoded | None = None
) -> bytes:
    return _encoder.encode(completed_response(completion, meta, signer, echo_of(decoded)))


# Task status → Responses status (runapi-contract §3.3); `completed` may become `incomplete`.
TASK_STATUS: dict[str, wire.ResponseStatus] = {
    "pending": "queued",
    "processing": "in_progress",
    "completed": "completed",
    "failed": "failed",
    "canceled": "cancelled",
}


def render_state(
    meta: ResponseMeta,
    signer: ReasoningSigner,
    task_status: str,
    *,
    completion: Completion | None = None,
    error: RunapiError | None = None,
    decoded: Decoded | None = None,
) -> bytes:
    """The Response object for a background or stored response, from its task's state:
    `queued` / `in_progress` (no output yet), `completed` / `incomplete`, `failed` (with `error`),
    `cancelled` (with whatever output was produced)."""
    echo = echo_of(decoded)
    status = TASK_STATUS.get(task_status)
    if status is None:
        raise ValueError(f"unknown task status {task_status!r}")
    if status == "completed" and completion is not None:
        return _encoder.encode(completed_response(completion, meta, signer, echo))
    output = output_items(completion, meta, signer) if completion is not None else []
    usage = usage_out(completion.usage, meta.cost_usd) if completion is not None else None
    failure = None
    if status == "failed":
        failure = wire.ResponseErrorOut(
            code=error_code(error) if error is not None else "server_error",
            message=error.message if error is not None else "The response failed.",
        )
    return _encoder.encode(
        response_object(meta, echo, status=status, output=output, usage=usage, error=failure)
    )
