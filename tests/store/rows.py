"""A `tasks` row for the store tests: every column without a default present (None where
nullable), so bulk statements take the defaults for the rest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runapi.store.schema import tasks

NOW = datetime(2026, 11, 26, 12, 30, 15, 123456, tzinfo=UTC)


def task_row(task_id: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c.name: None for c in tasks.c if c.default is None}
    row.update(
        id=task_id,
        account_id=7,
        api_key_id="key_1",
        model="MiniMax-M2.7",
        endpoint="chat.completions",
        surface_id="chatcmpl-" + task_id,
        status="processing",
        created_at=NOW,
    )
    row.update(extra)
    return row
