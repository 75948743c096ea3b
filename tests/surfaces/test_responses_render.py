"""Responses object rendering, stored-object shapes and errors, checked against the official SDK."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from openai.types.responses import Response, ResponseItemList

from runapi.canonical import (
    ChatRequest,
    Completion,
    FinishReason,
    ImagePart,
    Message,
    ReasoningControl,
    ReasoningPart,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    Usage,
)
from runapi.canonical.codec import Decoded, GatewayOptions, ResponseMeta
from runapi.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamUnavailable
from runapi.surfaces.openai_responses import ResponsesSurface
from runapi.surfaces.openai_responses.sealed_reasoning import unseal

surface = ResponsesSurface(b"test-signing-key")
ULID = "01JZ8Q4M1T6Y3N0X5V2C7B9D8E"
USAGE = Usage(
    input_tokens=100, output_tokens=40, cached_input_tokens=30, cache_write_tokens=5, reasoning_tokens=12
)


def meta(**kw: Any) -> ResponseMeta:
    fields: dict[str, Any] = {
        "surface_id": f"resp_{ULID}",
        "task_id": f"task_{ULID}",
        "request_id": "req_1",
        "model": "MiniMax-M2.7",
        "created": 1_773_799_200,
        "cost_usd": 0.0005,
    }
    fields.update(kw)
    return ResponseMeta(**fields)


def completion(reason: FinishReason = "tool_calls") -> Completion:
    return Completion(
        parts=[
            ReasoningPart("Need the weather tool."),
            TextPart("Let me check."),
            ToolCallPart("call_function_1", "get_weather", '{"city": "Paris"}'),
        ],
        finish_reason=reason,
        usage=USAGE,
    )


def render(c: Completion, m: ResponseMeta | None = None, decoded: Decoded | None = None) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.json.decode(surface.render(c, m or meta(), decoded))
    return data


def test_response_validates_with_the_sdk() -> None:
    response = Response.model_validate(render(completion()))
    assert response.id == f"resp_{ULID}"
    assert response.object == "response"
    assert response.status == "completed"
    assert response.created_at == 1_773_799_200
    reasoning, message, call = response.output
    assert reasoning.type == "reasoning"
    assert reasoning.id == f"rs_{ULID}_0"
    assert reasoning.content is not None
    assert reasoning.content[0].text == "Need the weather tool."
    assert message.type == "message"
    assert message.id == f"msg_{ULID}_1"
    assert message.status == "completed"
    assert message.content[0].type == "output_text"
    assert message.content[0].annotations == []
    assert call.type == "function_call"
    assert call.id == f"fc_{ULID}_2"
    assert (call.call_id, call.name, call.arguments) == (
        "call_function_1",
        "get_weather",
        '{"city": "Paris"}',
    )
    assert response.output_text == "Let me check."  # the SDK's computed property
    assert response.tools == []
    assert response.instructions is None


def test_usage_and_cost() -> None:
    data = render(completion())
    assert data["usage"] == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 5},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 140,
        "cost": 0.0005,
    }
    assert Response.model_validate(data).usage is not None


def test_encrypted_content_round_trips() -> None:
    reasoning = render(completion())["output"][0]
    part = unseal(reasoning["encrypted_content"], surface.signer)
    assert part == ReasoningPart("Need the weather tool.", surface.signer.sign("Need the weather tool."))


@pytest.mark.parametrize(
    ("reason", "status", "detail"),
    [
        ("stop", "completed", None),
        ("stop_sequence", "completed", None),
        ("tool_calls", "completed", None),
        ("length", "incomplete", "max_output_tokens"),
        ("content_filter", "incomplete", "content_filter"),
    ],
)
def test_status_per_finish_reason(reason: FinishReason, status: str, detail: str | None) -> None:
    c = Completion(parts=[TextPart("partial")], finish_reason=reason, usage=USAGE)
    data = render(c)
    response = Response.model_validate(data)
    assert response.status == status
    if detail is None:
        assert response.incomplete_details is None
        assert data["output"][0]["status"] == "completed"
    else:
        assert response.incomplete_details is not None
        assert response.incomplete_details.reason == detail
        assert data["output"][-1]["status"] == "incomplete"


def test_echo_reports_scalar_settings_only() -> None:
    request = ChatRequest(
        model="MiniMax-M2.7",
        messages=(Message("user", (TextPart("secret input"),)),),
        system=("secret instructions",),
        max_output_tokens=300,
        temperature=0.2,
        top_p=0.9,
        tool_choice=ToolChoice("tool", "get_weather"),
        parallel_tool_calls=False,
        response_format=ResponseFormat("json_schema", "out", {"type": "object"}, True),
        reasoning=ReasoningControl(enabled=True, effort="low"),
        user="u1",
        metadata={"k": "v"},
    )
    decoded = Decoded(
        request=request,
        gateway=GatewayOptions(store_input=True, background=True, previous_response_id="resp_0"),
    )
    data = render(completion(), decoded=decoded)
    response = Response.model_validate(data)
    assert (response.max_output_tokens, response.temperature, response.top_p) == (300, 0.2, 0.9)
    assert response.tool_choice.type == "function"  # type: ignore[union-attr]
    assert response.parallel_tool_calls is False
    assert (data["store"], response.background, response.previous_response_id) == (True, True, "resp_0")
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"
    assert response.reasoning is not None
    assert response.reasoning.effort == "low"
    assert (response.user, response.metadata) == ("u1", {"k": "v"})
    assert b"secret" not in msgspec.json.encode(data)


# ---------------------------------------------------------------- stored and background responses


@pytest.mark.parametrize(("task_status", "status"), [("pending", "queued"), ("processing", "in_progress")])
def test_state_without_output(task_status: str, status: str) -> None:
    response = Response.model_validate(
        msgspec.json.decode(surface.render_state(meta(cost_usd=None), task_status))
    )
    assert response.status == status
    assert response.output == []
    assert response.usage is None


def test_state_completed_incomplete_failed_cancelled() -> None:
    done = Response.model_validate(
        msgspec.json.decode(surface.render_state(meta(), "completed", completion=completion()))
    )
    assert done.status == "completed"
    assert len(done.output) == 3
    cut = Response.model_validate(
        msgspec.json.decode(surface.render_state(meta(), "completed", completion=completion("length")))
    )
    assert cut.status == "incomplete"
    for error, code in [
        (UpstreamError("upstream 500"), "server_error"),
        (RateLimited("slow"), "rate_limit_exceeded"),
        (InvalidRequest("context too long"), "invalid_prompt"),
    ]:
        failed = Response.model_validate(
            msgspec.json.decode(surface.render_state(meta(), "failed", error=error))
        )
        assert failed.status == "failed"
        assert failed.error is not None
        assert (failed.error.code, failed.error.message) == (code, error.message)
    partial = Completion(parts=[TextPart("half")], usage=USAGE)
    cancelled = Response.model_validate(
        msgspec.json.decode(surface.render_state(meta(), "canceled", completion=partial))
    )
    assert cancelled.status == "cancelled"
    assert cancelled.output[0].type == "message"
    with pytest.raises(ValueError, match="unknown task status"):
        surface.render_state(meta(), "exploded")


def test_deleted_shape() -> None:
    assert msgspec.json.decode(surface.render_deleted("resp_1")) == {
        "object": "response.deleted",
        "id": "resp_1",
        "deleted": True,
    }


MESSAGES = (
    Message("user", (TextPart("Weather?"), ImagePart("https://example.com/a.png"))),
    Message("assistant", (ReasoningPart("think"), TextPart("Checking."), ToolCallPart("call_1", "w", "{}"))),
    Message("tool", (ToolResultPart("call_1", "21C"),)),
    Message("user", (TextPart("Thanks"),)),
)


def test_input_items_list_validates_with_the_sdk() -> None:
    items = surface.input_items(MESSAGES, f"resp_{ULID}")
    page = ResponseItemList.model_validate(
        msgspec.json.decode(surface.render_input_items(items, order="asc"))
    )
    assert [item.type for item in page.data] == [
        "message",
        "reasoning",
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert page.first_id == f"msg_{ULID}_in0"
    assert page.has_more is False
    # Default order is newest first, with a working `after` cursor.
    first = msgspec.json.decode(surface.render_input_items(items, limit=2))
    assert [i["id"] for i in first["data"]] == [f"msg_{ULID}_in5", f"fco_{ULID}_in4"]
    assert first["has_more"] is True
    second = msgspec.json.decode(surface.render_input_items(items, limit=2, after=first["last_id"]))
    assert [i["id"] for i in second["data"]] == [f"fc_{ULID}_in3", f"msg_{ULID}_in2"]
    with pytest.raises(InvalidRequest) as info:
        surface.render_input_items(items, after="msg_nope")
    assert info.value.param == "after"
    with pytest.raises(InvalidRequest):
        surface.render_input_items(items, limit=101)


def test_input_items_decode_back_to_the_same_turns() -> None:
    """Stored inputs, listed and sent back as input, rebuild the same canonical conversation."""
    items = surface.input_items(MESSAGES, f"resp_{ULID}")
    raw = msgspec.json.encode({"model": "m", "input": items})
    decoded = surface.decode(raw).request.messages
    assert decoded[0] == MESSAGES[0]
    assert decoded[1] == Message(
        "assistant",
        (
            ReasoningPart("think", surface.signer.sign("think")),
            TextPart("Checking."),
            ToolCallPart("call_1", "w", "{}"),
        ),
    )
    assert decoded[2:] == MESSAGES[2:]


def test_assistant_message_for_previous_response_id() -> None:
    assert surface.assistant_message(completion()) == Message("assistant", tuple(completion().parts))


# ---------------------------------------------------------------- errors and headers (shared OpenAI envelope)


def test_error_envelope_has_param() -> None:
    status, raw, headers = surface.render_error(InvalidRequest("Bad tool.", param="tools[0].type"), "req_9")
    assert status == 400
    assert msgspec.json.decode(raw) == {
        "error": {
            "message": "Bad tool.",
            "type": "invalid_request_error",
            "param": "tools[0].type",
            "code": "invalid_value",
        }
    }
    assert headers["x-request-id"] == "req_9"
    status, raw, _ = surface.render_error(UpstreamUnavailable("down"), "req_9")
    assert status == 503
    assert msgspec.json.decode(raw)["error"]["type"] == "server_error"
