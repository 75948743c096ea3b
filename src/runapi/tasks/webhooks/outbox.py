"""The webhook outbox: events written with the task's state change, attempt log, redelivery."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import delete, select, update

from runapi.ids import new_ulid
from runapi.store.database import Database
from runapi.store.schema import (
    api_keys,
    webhook_attempts,
    webhook_failing_urls,
    webhook_outbox,
    webhook_stopped_urls,
)
from runapi.tasks.records import TaskRecord, rfc3339, utc

MAX_FULL_PAYLOAD = 256 * 1024
TERMINAL_EVENT_TYPES = frozenset({"task.completed", "task.failed", "task.canceled"})

_encoder = msgspec.json.Encoder()


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One POST to the callback URL, as `GET /v1/tasks/{id}/deliveries` shows it (§4.4)."""

    attempt: int
    at: str
    status_code: int | None
    duration_ms: float | None
    error: str | None
    webhook_id: str
    type: str


class StoppedUrl(msgspec.Struct, frozen=True, kw_only=True):
    """A callback URL no longer called for one key: `gone` (it answered 410) or `paused` (it failed
    without a break for `webhooks.pause_after_seconds`). A redelivery to it resumes it."""

    api_key_id: str
    key_hint: str
    url: str
    reason: str
    since: datetime


class _EventHead(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    timestamp: str
    response_omitted: bool = False


def event_payload(
    record: TaskRecord, event_type: str, now: datetime, max_full: int = MAX_FULL_PAYLOAD
) -> bytes:
    """The task object plus `type` and `timestamp` (§4.2). Over `max_full` bytes the response
    body is left out and `response_omitted: true` is set; the receiver fetches the task."""
    body = _encoder.encode(record.to_api())
    omitted = False
    if len(body) > max_full:
        body = _encoder.encode(record.to_api(include_body=False))
        omitted = True
    head = _encoder.encode(
        _EventHead(type=event_type, timestamp=rfc3339(now) or "", response_omitted=omitted)
    )
    # Both are JSON objects: splice the head's members in front of the task's.
    return head[:-1] + b"," + body[1:]


def build_event(
    record: TaskRecord, event_type: str, now: datetime, max_full: int = MAX_FULL_PAYLOAD
) -> dict[str, Any]:
    """The `webhook_outbox` row for an event of this task, due now. Its id (`evt_<ulid>`) is the
    `webhook-id`, the same on every retry."""
    assert record.callback_url is not None
    return {
        "id": "evt_" + new_ulid(),
        "task_id": record.id,
        "api_key_id": record.api_key_id,
        "event_type": event_type,
        "url": record.callback_url,
        "payload": event_payload(record, event_type, now, max_full).decode(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "locked_until": None,
    }


def events_for_transition(
    record: TaskRecord, event_type: str, now: datetime, max_full: int = MAX_FULL_PAYLOAD
) -> list[dict[str, Any]]:
    """Outbox rows the record's subscription asks for: `start` → `task.started`; `completed` →
    every terminal event (runapi-contract §4.1)."""
    if record.callback_url is None:
        return []
    wanted = "start" if event_type == "task.started" else "completed"
    if wanted not in record.events_filter:
        return []
    return [build_event(record, event_type, now, max_full)]


class WebhookOutbox:
    """Reads of the attempt log and manual redelivery."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def attempts(self, task_id: str) -> list[DeliveryAttempt]:
        query = (
            select(
                webhook_attempts.c.attempt,
                webhook_attempts.c.at,
                webhook_attempts.c.status_code,
                webhook_attempts.c.duration_ms,
                webhook_attempts.c.error,
                webhook_attempts.c.event_id,
                webhook_outbox.c.event_type,
            )
            .join(webhook_outbox, webhook_outbox.c.id == webhook_attempts.c.event_id)
            .where(webhook_attempts.c.task_id == task_id)
            .order_by(webhook_attempts.c.id)
        )
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            DeliveryAttempt(
                attempt=r.attempt,
                at=rfc3339(utc(r.at)) or "",
                status_code=r.status_code,
                duration_ms=r.duration_ms,
                error=r.error,
                webhook_id=r.event_id,
                type=r.event_type,
            )
            for r in rows
        ]

    async def stopped_urls(self, account_id: int) -> list[StoppedUrl]:
        """The account's stopped callback URLs, most recently stopped first."""
        query = (
            select(
                webhook_stopped_urls.c.api_key_id,
                api_keys.c.key_hint,
                webhook_stopped_urls.c.url,
                webhook_stopped_urls.c.reason,
                webhook_stopped_urls.c.stopped_at,
            )
            .join(api_keys, api_keys.c.id == webhook_stopped_urls.c.api_key_id)
            .where(api_keys.c.account_id == account_id)
            .order_by(webhook_stopped_urls.c.stopped_at.desc())
        )
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            StoppedUrl(
                api_key_id=r.api_key_id,
                key_hint=r.key_hint,
                url=r.url,
                reason=r.reason,
                since=utc(r.stopped_at),
            )
            for r in rows
        ]

    async def redeliver(self, task_id: str) -> str | None:
        """Queue the latest event again, due now, with the same `webhook-id` and a fresh retry
        schedule; returns that id, or None when the task has no event."""
        async with self.db.begin() as conn:
            latest = (
                await conn.execute(
                    select(webhook_outbox.c.id, webhook_outbox.c.api_key_id, webhook_outbox.c.url)
                    .where(webhook_outbox.c.task_id == task_id)
                    .order_by(webhook_outbox.c.id.desc())
                    .limit(1)
                )
            ).first()
            if latest is None:
                return None
            # An explicit redelivery lifts a stop for that URL (410 or paused), and its failures
            # are counted afresh.
            for table in (webhook_stopped_urls, webhook_failing_urls):
                await conn.execute(
                    delete(table).where(table.c.api_key_id == latest.api_key_id, table.c.url == latest.url)
                )
            await conn.execute(
                update(webhook_outbox)
                .where(webhook_outbox.c.id == latest.id)
                .values(status="pending", attempts=0, next_attempt_at=datetime.now(UTC), locked_until=None)
            )
        return str(latest.id)
