"""Small builders shared by the tasks tests."""

from __future__ import annotations

from typing import Any

from runapi.canonical.types import Usage
from runapi.settings import Settings
from runapi.tasks.records import ResponseEnvelope, TaskOutcome, TaskRecord


def new_record(
    settings: Settings,
    account_id: int = 1,
    api_key_id: str = "key_test",
    model: str = "MiniMax-M2.7",
    **kw: Any,
) -> TaskRecord:
    return TaskRecord.new(
        account_id=account_id,
        api_key_id=api_key_id,
        model=model,
        endpoint="chat.completions",
        surface_prefix="chatcmpl-",
        settings=settings.tasks,
        **kw,
    )


def completed(
    body: bytes = b'{"id":"chatcmpl-x","object":"chat.completion"}', cost: int = 588
) -> TaskOutcome:
    return TaskOutcome(
        status="completed",
        finish_reason="stop",
        usage=Usage(input_tokens=1200, output_tokens=350, cached_input_tokens=800, reasoning_tokens=120),
        cost_micros=cost,
        billed=True,
        response=ResponseEnvelope(status=200, headers={"x-request-id": "req_1"}, body=body),
    )
