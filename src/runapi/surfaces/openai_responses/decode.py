"""OpenAI Responses request → canonical `ChatRequest` (pure; protocols.md §2.2, §2.3, §6)."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from runapi.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ReasoningControl,
    ReasoningPart,
    ResponseFormat,
    Role,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)
from runapi.canonical.codec import Decoded, GatewayOptions
from runapi.errors import InvalidRequest
from runapi.surfaces.openai_responses import request as wire
from runapi.surfaces.openai_responses.sealed_reasoning import unseal
from runapi.surfaces.reasoning_signature import ReasoningSigner
from runapi.surfaces.validation import decode_or_invalid

_decoder = msgspec.json.Decoder(wire.ResponsesRequest)
_item_decoder: msgspec.json.Decoder[wire.InputItem] = msgspec.json.Decoder(wire.InputItem)
_message_decoder = msgspec.json.Decoder(wire.MessageItem)
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_TYPE_MISSING = "Object missing required field `type`"
_MODES: dict[str, Literal["auto", "none", "required"]] = {
    "auto": "auto",
    "none": "none",
    "required": "required",
}


def _item(raw: msgspec.Raw, param: str) -> wire.InputItem:
    """One input item; an item without `type` is the short form of a message (§2.3)."""
    try:
        return _item_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        if str(exc) == _TYPE_MISSING:
            try:
                return _message_decoder.decode(raw)
            except msgspec.ValidationError as inner:
                exc = inner
        text = str(exc)
        match = _AT.search(text)
        if match:
            param += match.group("path")
            text = text[: match.start()]
        missing = _MISSING.match(text)
        if missing:
            param += "." + missing.group("field")
        raise InvalidRequest(f"Invalid value for '{param}': {text}", param=param) from None


def _text(content: str | list[wire.ContentPart], param: str) -> str:
    """System, developer and tool-output content: text only."""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        if isinstance(part, wire.InputText | wire.OutputText):
            texts.append(part.text)
        elif isinstance(part, wire.Refusal):
            texts.append(part.refusal)
        else:
            kind = type(part).__struct_config__.tag
            raise InvalidRequest(
                f"Only text parts are allowed here, not '{kind}'.", param=f"{param}[{i}].type"
            )
    return "".join(texts)


def _parts(content: str | list[wire.ContentPart], param: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    parts: list[Part] = []
    for i, part in enumerate(content):
        if isinstance(part, wire.InputText | wire.OutputText):
            parts.append(TextPart(part.text))
        elif isinstance(part, wire.Refusal):
            parts.append(TextPart(part.refusal))
        elif isinstance(part, wire.InputImage):
            if not part.image_url:
                raise InvalidRequest(
                    "Images must be given as 'image_url' (a URL or a data URL); file ids are not supported.",
                    param=f"{param}[{i}].image_url",
                )
            # "auto" is the default: canonical None, so surfaces without `detail` compare equal.
            detail = None if part.detail == "auto" else part.detail
            parts.append(ImagePart(url=part.image_url, detail=detail))
        else:
            raise InvalidRequest(
                "Files are not supported by this gateway's models.", param=f"{param}[{i}].type"
            )
    return parts


class _History:
    """Folds input items into canonical turns: consecutive reasoning, assistant messages and
    function calls are one assistant turn; consecutive function-call outputs are one tool turn."""

    def __init__(self, signer: ReasoningSigner) -> None:
        self.signer = signer
        self.system: list[str] = []
        self.messages: list[Message] = []
        self._role: Role | None = None
        self._parts: list[Part] = []
        self._last_calls: list[str] = []

    def _flush(self) -> None:
        if self._role is None:
            return
        if self._role == "tool":
            order = {call_id: n for n, call_id in enumerate(self._last_calls)}
            results = sorted(
                (p for p in self._parts if isinstance(p, ToolResultPart)),
                key=lambda r: order.get(r.tool_call_id, len(order)),
            )
            self.messages.append(Message(role="tool", parts=tuple(results)))
        elif self._parts:
            if self._role == "assistant":
                self._last_calls = [p.id for p in self._parts if isinstance(p, ToolCallPart)]
            self.messages.append(Message(role=self._role, parts=tuple(self._parts)))
        self._role, self._parts = None, []

    def _add(self, role: Role, parts: list[Part], *, merge: bool = True) -> None:
        if self._role != role or not merge:
            self._flush()
            self._role = role
        self._parts.extend(parts)

    def add(self, item: wire.InputItem, param: str) -> None:
        if isinstance(item, wire.MessageItem):
            if item.role in ("system", "developer"):
                self.system.append(_text(item.content, f"{param}.content"))
            elif item.role == "assistant":
                self._add("assistant", _parts(item.content, f"{param}.content"))
            else:
                self._add("user", _parts(item.content, f"{param}.content"), merge=False)
        elif isinstance(item, wire.FunctionCallItem):
            self._add("assistant", [ToolCallPart(id=item.call_id, name=item.name, arguments=item.arguments)])
        elif isinstance(item, wire.FunctionCallOutputItem):
            content = _text(item.output, f"{param}.output")
            self._add("tool", [ToolResultPart(tool_call_id=item.call_id, content=content)])
        elif isinstance(item, wire.ReasoningItem):
            part = self._reasoning(item)
            if part is not None:
                self._add("assistant", [part])
        else:
            raise InvalidRequest(
                "Item references need server-side state this gateway does not keep; send the item itself.",
                param=f"{param}.type",
            )

    def _reasoning(self, item: wire.ReasoningItem) -> ReasoningPart | None:
        # Our own sealed copy wins: it is exactly what the model produced (§6.7).
        if item.encrypted_content:
            sealed = unseal(item.encrypted_content, self.signer)
            if sealed is not None:
                return sealed
        text = "".join(c.text for c in item.content or ()) or "\n\n".join(s.text for s in item.summary)
        return ReasoningPart(text) if text else None

    def finish(self) -> None:
        self._flush()


def _tools(tools: list[wire.Tool] | None) -> tuple[ToolSpec, ...]:
    specs = []
    for i, tool in enumerate(tools or ()):
        if tool.type != "function":
            raise InvalidRequest(
                f"Tools of type '{tool.type}' are not supported by this gateway; only 'function' tools are.",
                param=f"tools[{i}].type",
            )
        if not tool.name:
            raise InvalidRequest("A function tool needs a 'name'.", param=f"tools[{i}].name")
        specs.append(ToolSpec(name=tool.name, description=tool.description, parameters=tool.parameters or {}))
    return tuple(specs)


def _tool_choice(
    choice: str | wire.ToolChoiceObject | None, tools: tuple[ToolSpec, ...]
) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = _MODES.get(choice)
        if mode is None:
            raise InvalidRequest(
                f"tool_choice '{choice}' is not one of 'auto', 'none', 'required'.", param="tool_choice"
            )
        if mode == "required" and not tools:
            raise InvalidRequest("tool_choice 'required' needs at least one tool.", param="tool_choice")
        return ToolChoice(mode=mode)
    if choice.type != "function" or not choice.name:
        raise InvalidRequest(
            "tool_choice must be a mode or {'type': 'function', 'name': ...}.", param="tool_choice"
        )
    if choice.name not in {t.name for t in tools}:
        raise InvalidRequest(
            f"tool_choice names '{choice.name}', which is not in 'tools'.", param="tool_choice"
        )
    return ToolChoice(mode="tool", name=choice.name)


def _response_format(text: wire.TextConfig | None) -> ResponseFormat | None:
    fmt = text.format if text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema":
        if fmt.schema is None:
            raise InvalidRequest("text.format json_schema needs a 'schema'.", param="text.format.schema")
        return ResponseFormat(type="json_schema", name=fmt.name, schema=fmt.schema, strict=fmt.strict)
    return ResponseFormat(type="json_object")


def _reasoning(config: wire.ReasoningConfig | None) -> ReasoningControl | None:
    if config is None or config.effort is None:
        return None
    return ReasoningControl(enabled=config.effort != "none", effort=config.effort)


def _check_ranges(req: wire.ResponsesRequest) -> None:
    if req.temperature is not None and not 0.0 <= req.temperature <= 2.0:
        raise InvalidRequest("temperature must be between 0 and 2.", param="temperature")
    if req.top_p is not None and not 0.0 <= req.top_p <= 1.0:
        raise InvalidRequest("top_p must be between 0 and 1.", param="top_p")
    if req.max_output_tokens is not None and req.max_output_tokens < 1:
        raise InvalidRequest("max_output_tokens must be at least 1.", param="max_output_tokens")


def to_canonical(req: wire.ResponsesRequest, signer: ReasoningSigner) -> ChatRequest:
    _check_ranges(req)
    history = _History(signer)
    if req.instructions:
        history.system.append(req.instructions)
    if isinstance(req.input, str):
        history.add(wire.MessageItem(role="user", content=req.input), "input")
    else:
        for i, raw in enumerate(req.input or ()):
            param = f"input[{i}]"
            history.add(_item(raw, param), param)
    history.finish()
    tools = _tools(req.tools)
    return ChatRequest(
        model=req.model,
        messages=tuple(history.messages),
        system=tuple(history.system),
        max_output_tokens=req.max_output_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        tools=tools,
        tool_choice=_tool_choice(req.tool_choice, tools),
        parallel_tool_calls=req.parallel_tool_calls,
        response_format=_response_format(req.text),
        reasoning=_reasoning(req.reasoning),
        stream=req.stream,
        user=req.user or req.safety_identifier,
        metadata=req.metadata or {},
    )


def decode(body: bytes, signer: ReasoningSigner) -> Decoded:
    req = decode_or_invalid(_decoder, body)
    if not req.model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    request = to_canonical(req, signer)
    # With `previous_response_id` the earlier turns come from storage; otherwise input must say something.
    if not request.messages and req.previous_response_id is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    gateway = GatewayOptions(
        callback_url=req.callback_url,
        webhook_events_filter=tuple(req.webhook_events_filter) if req.webhook_events_filter else None,
        background=req.background,
        store_input=req.store is True,
        previous_response_id=req.previous_response_id,
    )
    return Decoded(request=request, gateway=gateway, requested_model=req.model)


def decode_input_tokens(body: bytes, signer: ReasoningSigner) -> ChatRequest:
    """`POST /v1/responses/input_tokens`: the create body; `model` and `input` may be left out."""
    return to_canonical(decode_or_invalid(_decoder, body), signer)
