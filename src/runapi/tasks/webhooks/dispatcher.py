"""Delivers outbox rows: lease, sign, POST, record, reschedule. Safe with many gateway processes.

At least once: a row is leased (`locked_until`) with a guarded UPDATE, so two processes never send
the same attempt, and a process that dies mid-delivery leaves a lease that simply runs out.

A URL stops receiving a key's events when it answers 410 Gone, or when it has failed without a
break for `webhooks.pause_after_seconds` (5 days: paused, runapi-contract §4). Its queued events
stop with it; a redelivery lifts the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook

from runapi.errors import InvalidRequest
from runapi.settings import Settings
from runapi.store.database import Database
from runapi.store.schema import (
    tasks,
    webhook_attempts,
    webhook_failing_urls,
    webhook_outbox,
    webhook_stopped_urls,
)
from runapi.tasks.webhooks.outbox import TERMINAL_EVENT_TYPES
from runapi.tasks.webhooks.secrets import WebhookSecrets
from runapi.tasks.webhooks.ssrf import CheckingResolver, validate_callback_url

log = logging.getLogger(__name__)

_MAX_RETRY_AFTER = 86_400.0
_JITTER = 0.1  # each scheduled delay is stretched or shrunk by up to 10%
_USER_AGENT = "runapi-webhooks/1"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, min((when - now).total_seconds(), _MAX_RETRY_AFTER))


class _Result:
    __slots__ = ("duration_ms", "error", "retry_after", "status_code")

    def __init__(self) -> None:
        self.status_code: int | None = None
        self.error: str | None = None
        self.retry_after: float | None = None
        self.duration_ms = 0.0


class WebhookDispatcher:
    """One per process. `wake()` after writing outbox rows; otherwise it polls every
    `webhooks.poll_interval_seconds` for rows whose retry is due."""

    def __init__(self, db: Database, settings: Settings, secrets: WebhookSecrets) -> None:
        w = settings.webhooks
        self.db = db
        self.settings = settings
        self.secrets = secrets
        self._schedule = w.retry_schedule
        self._timeout = w.timeout_seconds
        self._batch = max(1, w.concurrency)
        self._poll = w.poll_interval_seconds
        self._lease = timedelta(seconds=w.timeout_seconds * 2 + 30)
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._pause_after = timedelta(seconds=w.pause_after_seconds)
        upsert = sqlite.insert if db.is_sqlite else postgresql.insert
        self._stop_url = upsert(webhook_stopped_urls)
        self._failing = upsert(webhook_failing_urls)

    async def start(self) -> None:
        if self._loop is not None:
            return
        # Our own session, always: its resolver is the SSRF check, and the connector's DNS cache is
        # off so every attempt is checked again (§4.5).
        connector = aiohttp.TCPConnector(
            resolver=CheckingResolver(self.settings.webhooks), use_dns_cache=False, limit=self._batch
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self._timeout)
        )
        self._loop = asyncio.create_task(self._run(), name="runapi-webhook-dispatcher")

    async def close(self) -> None:
        """Stop; deliveries cut short keep their lease and are retried when it runs out."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def wake(self) -> None:
        """New rows are due now (called after a flush that wrote outbox rows)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                attempted = await self.run_once()
            except Exception:
                log.exception("webhook dispatch round failed")
                attempted = 0
            if attempted < self._batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                self._wake.clear()

    async def run_once(self, now: datetime | None = None) -> int:
        """Lease and deliver the rows due now, concurrently; returns how many were attempted."""
        if self._session is None:
            raise RuntimeError("WebhookDispatcher.start() was not called")
        rows = await self._lease_due(now or datetime.now(UTC))
        if rows:
            await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _lease_due(self, now: datetime) -> list[Any]:
        free = or_(webhook_outbox.c.locked_until.is_(None), webhook_outbox.c.locked_until < now)
        async with self.db.begin() as conn:
            candidates = (
                await conn.execute(
                    select(webhook_outbox)
                    .where(
                        webhook_outbox.c.status == "pending", webhook_outbox.c.next_attempt_at <= now, free
                    )
                    .order_by(webhook_outbox.c.next_attempt_at)
                    .limit(self._batch)
                )
            ).all()
            if not candidates:
                return []
            stopped = {
                (r.api_key_id, r.url)
                for r in (
                    await conn.execute(
                        select(webhook_stopped_urls.c.api_key_id, webhook_stopped_urls.c.url).where(
                            webhook_stopped_urls.c.api_key_id.in_({c.api_key_id for c in candidates})
                        )
                    )
                ).all()
            }
            leased = []
            for row in candidates:
                if (row.api_key_id, row.url) in stopped:
                    await conn.execute(
                        update(webhook_outbox).where(webhook_outbox.c.id == row.id).values(status="stopped")
                    )
                    await self._set_callback_result(conn, row, False)
                    continue
                taken = await conn.execute(
                    update(webhook_outbox)
                    .where(webhook_outbox.c.id == row.id, webhook_outbox.c.status == "pending", free)
                    .values(locked_until=now + self._lease)
                )
                if taken.rowcount == 1:
                    leased.append(row)
        return leased

    async def _deliver(self, row: Any) -> None:
        assert self._session is not None
        attempt_at = datetime.now(UTC)
        result = _Result()
        started = time.monotonic()
        try:
            # Static rules and IP literals here; host names are checked by the resolver at connect.
            await validate_callback_url(row.url, self.settings.webhooks, resolve=False)
            signing = await self.secrets.signing_secrets(row.api_key_id, attempt_at)
            if not signing:
                raise InvalidRequest("the API key of this webhook no longer exists")
            timestamp = int(attempt_at.timestamp())
            signed_at = datetime.fromtimestamp(timestamp, UTC)
            signature = " ".join(Webhook(s).sign(row.id, signed_at, row.payload) for s in signing)
            headers = {
                "webhook-id": row.id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature,
                "content-type": "application/json",
                "user-agent": _USER_AGENT,
            }
            async with self._session.post(
                row.url, data=row.payload.encode(), headers=headers, allow_redirects=False
            ) as response:
                result.status_code = response.status
                result.retry_after = parse_retry_after(response.headers.get("Retry-After"), attempt_at)
        except InvalidRequest as exc:
            result.error = f"refused: {exc.message}"
        except TimeoutError:
            result.error = "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:500]
        result.duration_ms = round((time.monotonic() - started) * 1000, 1)
        try:
            await self._record(row, attempt_at, result)
        except Exception:
            # The lease runs out and the row is tried again: at least once, never lost.
            log.exception("could not record webhook attempt for %s", row.id)

    async def _record(self, row: Any, at: datetime, result: _Result) -> None:
        made = row.attempts + 1
        code = result.status_code
        succeeded = code is not None and 200 <= code < 300
        async with self.db.begin() as conn:
            pause = False
            if not succeeded and code != 410:
                since = await self._failing_since(conn, row, at)
                pause = at - since >= self._pause_after
                if pause:
                    result.error = (
                        f"{result.error or f'HTTP {code}'}; the URL is paused: it has failed since "
                        f"{since.isoformat()} without a success"
                    )[:500]
                    log.warning(
                        "webhook URL %s of key %s paused: failing since %s; a redelivery resumes it",
                        row.url,
                        row.api_key_id,
                        since.isoformat(),
                    )
            earlier = (
                await conn.execute(
                    select(func.count())
                    .select_from(webhook_attempts)
                    .where(webhook_attempts.c.event_id == row.id)
                )
            ).scalar_one()
            await conn.execute(
                insert(webhook_attempts).values(
                    event_id=row.id,
                    task_id=row.task_id,
                    attempt=int(earlier) + 1,
                    at=at,
                    status_code=code,
                    duration_ms=result.duration_ms,
                    error=result.error,
                )
            )
            done = update(webhook_outbox).where(webhook_outbox.c.id == row.id)
            if succeeded:
                await conn.execute(done.values(status="delivered", attempts=made, locked_until=None))
                await self._set_callback_result(conn, row, True)
                await conn.execute(_delete_failing(row))
            elif code == 410 or pause:
                await conn.execute(done.values(status="stopped", attempts=made, locked_until=None))
                await self._set_callback_result(conn, row, False)
                await self._stop(conn, row, at, "gone" if code == 410 else "paused")
            elif made < len(self._schedule):
                delay = self._schedule[made] * random.uniform(1 - _JITTER, 1 + _JITTER)
                if result.retry_after is not None and result.retry_after > delay:
                    delay = result.retry_after
                await conn.execute(
                    done.values(
                        attempts=made, next_attempt_at=at + timedelta(seconds=delay), locked_until=None
                    )
                )
            else:
                await conn.execute(done.values(status="failed", attempts=made, locked_until=None))
                await self._set_callback_result(conn, row, False)

    async def _failing_since(self, conn: AsyncConnection, row: Any, at: datetime) -> datetime:
        """When this key's URL started failing (now, for its first failure since a success)."""
        await conn.execute(
            self._failing.values(
                api_key_id=row.api_key_id, url=row.url, failing_since=at
            ).on_conflict_do_nothing()
        )
        f = webhook_failing_urls.c
        since: datetime = (
            await conn.execute(
                select(f.failing_since).where(f.api_key_id == row.api_key_id, f.url == row.url)
            )
        ).scalar_one()
        return since if since.tzinfo is not None else since.replace(tzinfo=UTC)

    async def _stop(self, conn: AsyncConnection, row: Any, at: datetime, reason: str) -> None:
        """No more deliveries to this URL for this key: its queued events stop too, and their
        tasks' callbacks are marked failed."""
        await conn.execute(
            self._stop_url.values(
                api_key_id=row.api_key_id, url=row.url, stopped_at=at, reason=reason
            ).on_conflict_do_nothing()
        )
        await conn.execute(_delete_failing(row))
        o = webhook_outbox.c
        queued = (
            await conn.execute(
                select(o.id, o.task_id, o.event_type).where(
                    o.api_key_id == row.api_key_id, o.url == row.url, o.status == "pending"
                )
            )
        ).all()
        if queued:
            await conn.execute(
                update(webhook_outbox).where(o.id.in_([q.id for q in queued])).values(status="stopped")
            )
            for q in queued:
                await self._set_callback_result(conn, q, False)

    @staticmethod
    async def _set_callback_result(conn: AsyncConnection, row: Any, succeeded: bool) -> None:
        """`callback_succeeded` reflects terminal events only (null until the first one ends)."""
        if row.event_type in TERMINAL_EVENT_TYPES:
            await conn.execute(
                update(tasks).where(tasks.c.id == row.task_id).values(callback_succeeded=succeeded)
            )


def _delete_failing(row: Any) -> Any:
    f = webhook_failing_urls.c
    return delete(webhook_failing_urls).where(f.api_key_id == row.api_key_id, f.url == row.url)
