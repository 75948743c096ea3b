"""The request checks MiniMax enforces, each answered with 400 and code 2013 (protocols §5.3).

MiniMax is strict about conversation history; gateways are expected to repair history before
forwarding, so the simulator must reject exactly what MiniMax rejects to make that testable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from .catalog import ModelInfo
from .errors import invalid_params
from .wire import ChatRequest

__all__ = ["check_request", "thinking_disabled"]

_ROLES = frozenset(
    {
        "system",
        "user",
        "assistant",
        "tool",
        "user_system",
        "group",
        "sample_message_user",
        "sample_message_ai",
    }
)
_M3_ROLES = _ROLES | {"root"}
_THINKING_TYPES = ("adaptive", "enabled", "disabled")
# M3 (MiniMax's verifier; `minimal` is taken as `low`). M2.x ignores the field.
_M3_EFFORTS = ("minimal", "low", "medium", "high", "xhigh", "max")


def check_request(request: ChatRequest, model: ModelInfo) -> None:
    """Raise the 2013 error MiniMax would answer for ``request``, if any."""
    _check_params(request, model)
    _check_tools(request)
    _check_messages(request.messages, model)


def thinking_disabled(request: ChatRequest, model: ModelInfo) -> bool:
    """Only M3 can switch thinking off; M2.x accepts the field and thinks anyway."""
    thinking = request.thinking
    return model.is_m3 and isinstance(thinking, dict) and thinking.get("type") == "disabled"


def _check_params(request: ChatRequest, model: ModelInfo) -> None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = getattr(request, name)
        if value is None:
            continue
        if value < 1:
            raise invalid_params(f"{name} must be greater than 0")
        if model.max_output is not None and value > model.max_output:
            raise invalid_params(f"{name} must be less than or equal to {model.max_output}")
    thinking = request.thinking
    if thinking is not None:
        if not isinstance(thinking, dict):
            raise invalid_params('thinking must be an object, e.g. {"type": "disabled"}')
        if thinking.get("type") not in _THINKING_TYPES:
            raise invalid_params(f"thinking.type must be one of {', '.join(_THINKING_TYPES)}")
    effort = request.reasoning_effort
    if effort is not None and model.is_m3:
        if effort == "none":
            if not thinking_disabled(request, model):
                raise invalid_params("reasoning_effort none conflicts with thinking, which is on")
        elif effort not in _M3_EFFORTS:
            raise invalid_params(f"reasoning_effort must be one of none, {', '.join(_M3_EFFORTS)}")
    # `n` > 1 is silently ignored (M3 per probes; M2.x treated the same).


def _check_tools(request: ChatRequest) -> None:
    for i, tool in enumerate(request.tools or ()):
        if tool.type != "function":
            raise invalid_params(f"tools[{i}].type must be 'function'")
        if tool.function.strict is None:
            raise invalid_params(f"tools[{i}].function.strict must be a boolean, got null")


def _check_messages(messages: list[dict[str, Any]], model: ModelInfo) -> None:
    if not messages:
        raise invalid_params("messages must not be empty")
    roles = _M3_ROLES if model.is_m3 else _ROLES
    seen_system = False
    pending: dict[str, int] = {}  # tool-call ids of the last assistant turn still unanswered
    known_ids: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if not isinstance(role, str) or role not in roles:
            raise invalid_params(f"invalid message role: {role}")
        if role == "system":
            if seen_system and not model.is_m3:
                raise invalid_params("invalid message role: system")
            seen_system = True
        if role == "tool":
            _check_tool_result(message, i, pending, known_ids)
            continue
        if pending:
            raise invalid_params("tool call result does not follow tool call")
        if role == "assistant":
            for call_id in _check_tool_calls(message, i):
                pending[call_id] = i
                known_ids.add(call_id)
    if pending:
        raise invalid_params("tool call result does not follow tool call")


def _check_tool_calls(message: Mapping[str, Any], index: int) -> list[str]:
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise invalid_params(f"messages[{index}].tool_calls must be an array")
    ids: list[str] = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        call_id = call.get("id") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call_id, str) or not call_id:
            raise invalid_params(f"messages[{index}].tool_calls needs id and function")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            raise invalid_params("invalid function arguments json string")
        try:
            msgspec.json.decode(arguments)
        except msgspec.DecodeError:
            raise invalid_params("invalid function arguments json string") from None
        ids.append(call_id)
    return ids


def _check_tool_result(
    message: Mapping[str, Any], index: int, pending: dict[str, int], known_ids: set[str]
) -> None:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or call_id not in known_ids:
        raise invalid_params(f"tool result's tool id({call_id}) not found")
    content = message.get("content")
    if not isinstance(content, str | list):
        raise invalid_params(f"messages[{index}].content of a tool message must be a string")
    pending.pop(call_id, None)
