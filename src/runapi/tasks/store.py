"""The task store: write-behind (never lossy) task rows with read-your-writes, lookups, paging,
retention, cross-process ownership (heartbeats) and restart recovery.

Why write-behind: the response must not wait for the database (performance.md), yet no row may be
dropped. Writes go into an in-memory buffer that a background writer flushes in one transaction
every `flush_interval_ms`; a full buffer makes callers await (backpressure), never discards, and a
failed flush is retried with everything kept. `find` reads the buffer first, so a task is visible
in this process the moment it is created.

A sync task's first write waits (`sync_write_delay_ms`): most end within it and are then written
once, whole, instead of an insert and an update in two flushes. Its id reaches the client only with
the answer, so nobody outside this process can ask for it sooner; one that runs longer is written
as `processing` when the delay is up.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Update

from runapi.errors import NotFound
from runapi.ids import new_ulid
from runapi.settings import Settings
from runapi.store.database import Database
from runapi.store.schema import instances, response_inputs, tasks, webhook_outbox
from runapi.tasks.idempotency import Claim, IdempotencyStore
from runapi.tasks.records import (
    ACTIVE_STATUSES,
    FINISH_COLUMNS,
    START_COLUMNS,
    TaskOutcome,
    TaskRecord,
    apply_outcome,
    record_to_row,
    row_to_record,
    task_id_for,
)
from runapi.tasks.webhooks.outbox import events_for_transition

log = logging.getLogger(__name__)

MAX_PAGE = 100
_POLL_SECONDS = 0.25  # waiting on a task that runs in another process
_RECOVERY_BATCH = 500
_CLOSE_ATTEMPTS = 20  # about 30 s of retries before shutdown gives up on an unreachable database
_LIST_COLUMNS = [c for c in tasks.c if c.name != "response_body"]


def _host_key() -> str:
    """hostname|boot id|pid-namespace inode, or "" where that cannot be known (then liveness is
    judged by heartbeats alone). Two processes with equal keys can check each other's pid."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{socket.gethostname()}|{boot_id}|{pid_ns}"[:200]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


# Built once: a reused statement keeps its cache key, so a flush does not rebuild its expressions.
_INSERT_TASKS = insert(tasks)
_INSERT_OUTBOX = insert(webhook_outbox)
_UPDATES: dict[tuple[str, ...], Update] = {}


def _update_statement(cols: tuple[str, ...]) -> Update:
    """The write-behind update of `cols` (executemany: `b_id`, `b_<col>`), one per column set.
    Guarded: a task another process already ended (restart recovery) stays ended. `or_` of
    equalities, not `in_`: an expanding IN cannot run with executemany."""
    stmt = _UPDATES.get(cols)
    if stmt is None:
        active = or_(*(tasks.c.status == status for status in ACTIVE_STATUSES))
        stmt = _UPDATES[cols] = (
            update(tasks)
            .where(tasks.c.id == bindparam("b_id"), active)
            .values({c: bindparam("b_" + c) for c in cols})
        )
    return stmt


class TaskPage(msgspec.Struct, frozen=True, kw_only=True):
    records: builtins.list[TaskRecord]  # without response bodies
    has_more: bool


class _Pending:
    """Writes to one task not yet committed: an insert of the whole row, or an update of the
    columns changed since the last flush, plus the outbox rows of its transitions."""

    __slots__ = ("columns", "insert", "not_before", "outbox", "record")

    def __init__(self, record: TaskRecord, insert: bool) -> None:
        self.record = record
        self.insert = insert
        self.columns: set[str] = set()
        self.outbox: builtins.list[dict[str, Any]] = []
        self.not_before = 0.0  # loop time before which a deferred insert is not written

    def may_wait(self, now: float) -> bool:
        """A deferred insert of a task still running, with no webhook to send: keep it back."""
        return self.insert and now < self.not_before and not self.outbox and not self.record.is_terminal

    def absorb(self, newer: _Pending) -> None:
        self.record = newer.record
        self.insert = self.insert or newer.insert
        self.columns |= newer.columns
        self.outbox.extend(newer.outbox)


class TaskStore:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        worker_id: str | None = None,
        idempotency: IdempotencyStore | None = None,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.worker_id = worker_id or "wrk_" + new_ulid()
        self.idempotency = idempotency or IdempotencyStore(db)
        self.on_outbox = on_outbox
        t = settings.tasks
        self._interval = t.flush_interval_ms / 1000.0
        self._sync_delay = t.sync_write_delay_ms / 1000.0
        self._limit = t.write_buffer_limit
        self._retention = timedelta(days=t.retention_days)
        self._orphan_after = timedelta(seconds=t.orphan_after_seconds)
        self._max_payload = settings.webhooks.max_full_payload_bytes
        self._live: dict[str, TaskRecord] = {}  # active tasks created here
        self._dirty: dict[str, _Pending] = {}
        self._inflight: dict[str, _Pending] = {}
        # Deferred inserts in creation order (so the oldest is due first); never also in _dirty.
        self._held: dict[str, _Pending] = {}
        self._terminal: dict[str, asyncio.Event] = {}
        self._next_gen = 1  # the flush generation new writes join
        self._committed_gen = 0
        self._committed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        upsert = sqlite.insert if db.is_sqlite else postgresql.insert
        self._instance_upsert = upsert(instances)
        self._host_key = _host_key()

    # --- lifecycle ---

    async def start(self) -> None:
        """Start the background writer and register this process in `instances`."""
        if self._writer is None:
            self._closing = False
            self._writer = asyncio.create_task(self._write_loop(), name="runapi-task-writer")
            await self.heartbeat()

    async def close(self) -> None:
        """Flush everything, stop the writer, unregister the process."""
        if self._writer is None:
            return
        self._closing = True
        self._wake.set()
        self._urgent.set()
        await self._writer
        self._writer = None
        async with self.db.begin() as conn:
            await conn.execute(delete(instances).where(instances.c.id == self.worker_id))

    async def flush(self) -> None:
        """Wait until every write made before this call is committed."""
        if not self._dirty and not self._inflight and not self._held:
            return
        self._require_writer()
        target = self._next_gen if self._dirty or self._held else self._next_gen - 1
        self._urgent.set()
        self._wake.set()
        async with self._committed:
            await self._committed.wait_for(lambda: self._committed_gen >= target)

    # --- writes ---

    async def create(self, record: TaskRecord, *, durable: bool = False, deferred: bool = False) -> None:
        """Record a new task (status `pending`). Returns once buffered; with `durable=True` once
        committed (async mode: the 202 promises the task survives a crash); `deferred=True` (sync
        mode) holds the first write back for `sync_write_delay_ms`. The store keeps its own copy:
        later changes go through `mark_processing` and `finish`."""
        record = msgspec.structs.replace(record, worker_id=self.worker_id)
        if not record.is_terminal:
            self._live[record.id] = record
        await self._enqueue(record, insert=True, defer=self._sync_delay if deferred and not durable else 0.0)
        if durable:
            await self.flush()

    async def create_idempotent(self, record: TaskRecord) -> Claim:
        """Claim `record.idempotency_key` for `record.request_fingerprint` and insert the task in
        the same transaction (durable). `Claim.owner` False: nothing is created; `Claim.task_id`
        is the earlier task. Raises `Conflict(code="idempotency_key_reused")` for a different body."""
        key, fingerprint = record.idempotency_key, record.request_fingerprint
        if key is None or fingerprint is None:
            raise ValueError("create_idempotent needs idempotency_key and request_fingerprint")
        record = msgspec.structs.replace(record, worker_id=self.worker_id)
        async with self.db.begin() as conn:
            claim = await self.idempotency.claim_in(conn, record.api_key_id, key, fingerprint, record.id)
            if claim.owner:
                await conn.execute(insert(tasks).values(record_to_row(record)))
        if claim.owner and not record.is_terminal:
            self._live[record.id] = record
        return claim

    async def mark_processing(self, task_id: str) -> TaskRecord:
        """`pending` → `processing` (the upstream call starts); queues `task.started` when the
        subscription asks for it. A task that already ended is returned unchanged."""
        record = await self._current(task_id)
        if record.status != "pending":
            return msgspec.structs.replace(record)
        now = datetime.now(UTC)
        record.status = "processing"
        record.started_at = now
        outbox = events_for_transition(record, "task.started", now, self._max_payload)
        await self._enqueue(record, columns=START_COLUMNS, outbox=outbox)
        return msgspec.structs.replace(record)

    async def finish(self, task_id: str, outcome: TaskOutcome) -> TaskRecord:
        """Move the task to its terminal state and queue its `task.<status>` webhook in the same
        transaction. Idempotent; never overwrites a task that is already terminal in the database."""
        record = await self._current(task_id)
        if record.is_terminal:
            return msgspec.structs.replace(record)
        now = datetime.now(UTC)
        apply_outcome(record, outcome, now, self._retention)
        outbox = events_for_transition(record, f"task.{outcome.status}", now, self._max_payload)
        await self._enqueue(record, columns=FINISH_COLUMNS, outbox=outbox)
        self._live.pop(record.id, None)
        event = self._terminal.pop(record.id, None)
        if event is not None:
            event.set()
        return msgspec.structs.replace(record)

    async def request_cancel(self, task_id: str) -> None:
        """Ask the owning process (through the database) to cancel a task not running here; its
        heartbeat picks the request up."""
        await self.flush()
        async with self.db.begin() as conn:
            await conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id_for(task_id), tasks.c.status.in_(ACTIVE_STATUSES))
                .values(cancel_requested=True)
            )

    # --- reads ---

    async def get(self, task_or_surface_id: str, account_id: int) -> TaskRecord:
        """A task of this account by task id or surface id; `NotFound` otherwise (other accounts
        included, so ids of other accounts cannot be probed)."""
        record = await self.find(task_or_surface_id)
        if record is None or record.account_id != account_id:
            raise NotFound(f"No task found with id '{task_or_surface_id}'.", code="task_not_found")
        return record

    async def find(self, task_or_surface_id: str) -> TaskRecord | None:
        """Any task by id, for internal callers (no account check). Returns a copy."""
        task_id = task_id_for(task_or_surface_id)
        for buffer in (self._dirty, self._held, self._inflight):
            pending = buffer.get(task_id)
            if pending is not None:
                return msgspec.structs.replace(pending.record)
        live = self._live.get(task_id)
        if live is not None:
            return msgspec.structs.replace(live)
        async with self.db.connect() as conn:
            row = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).first()
        return row_to_record(row) if row is not None else None

    async def list_tasks(
        self,
        account_id: int,
        *,
        limit: int = 20,
        after: str | None = None,
        status: str | None = None,
        model: str | None = None,
    ) -> TaskPage:
        """Newest first, `limit` ≤ 100, `after` = the previous page's `last_id`. No bodies are read."""
        await self.flush()
        limit = max(1, min(limit, MAX_PAGE))
        query = select(*_LIST_COLUMNS).where(tasks.c.account_id == account_id)
        if after:
            query = query.where(tasks.c.id < task_id_for(after))
        if status:
            query = query.where(tasks.c.status == status)
        if model:
            query = query.where(tasks.c.model == model)
        query = query.order_by(tasks.c.id.desc()).limit(limit + 1)
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return TaskPage(records=[row_to_record(r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def wait_terminal(self, task_id: str, wait_seconds: float) -> TaskRecord | None:
        """Wait up to `wait_seconds` for the task to end, wherever it runs; the final record, or None
        on timeout (or when no such task appears)."""
        task_id = task_id_for(task_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            record = await self.find(task_id)
            if record is not None and record.is_terminal:
                return record
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            if task_id in self._live:
                event = self._terminal.setdefault(task_id, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
            else:
                await asyncio.sleep(min(_POLL_SECONDS, remaining))

    # --- retention ---

    async def remove_output(self, task_or_surface_id: str, account_id: int) -> TaskRecord:
        """Drop the stored output now, as retention would (`DELETE /v1/responses/{id}`). Usage and
        cost stay."""
        record = await self.get(task_or_surface_id, account_id)
        await self.flush()
        async with self.db.begin() as conn:
            await conn.execute(
                update(tasks)
                .where(tasks.c.id == record.id)
                .values(response_status=None, response_headers=None, response_body=None, data_removed=True)
            )
            await conn.execute(delete(response_inputs).where(response_inputs.c.task_id == record.id))
        return msgspec.structs.replace(record, response=None, data_removed=True)

    async def expire(self, now: datetime | None = None) -> int:
        """Retention: past `expires_at`, `response` becomes null and `data_removed` true; stored
        Responses inputs past theirs are deleted. Returns the number of tasks expired."""
        now = now or datetime.now(UTC)
        await self.flush()
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(tasks)
                .where(tasks.c.expires_at <= now, tasks.c.data_removed.is_(False))
                .values(response_status=None, response_headers=None, response_body=None, data_removed=True)
            )
            await conn.execute(delete(response_inputs).where(response_inputs.c.expires_at <= now))
        return int(result.rowcount or 0)

    # --- ownership and recovery ---

    async def heartbeat(self, now: datetime | None = None) -> builtins.list[str]:
        """Refresh this process's liveness; returns ids of its tasks whose cancel was requested."""
        now = now or datetime.now(UTC)
        values = {
            "id": self.worker_id,
            "hostname": socket.gethostname()[:255],
            "pid": os.getpid(),
            "host_key": self._host_key,
            "started_at": now,
            "heartbeat_at": now,
        }
        stmt = self._instance_upsert.values(values).on_conflict_do_update(
            index_elements=[instances.c.id], set_={"heartbeat_at": now}
        )
        async with self.db.begin() as conn:
            await conn.execute(stmt)
        async with self.db.connect() as conn:
            rows = (
                await conn.execute(
                    select(tasks.c.id).where(
                        tasks.c.worker_id == self.worker_id,
                        tasks.c.cancel_requested.is_(True),
                        tasks.c.status.in_(ACTIVE_STATUSES),
                    )
                )
            ).all()
        return [r.id for r in rows]

    async def recover_orphans(self, now: datetime | None = None) -> builtins.list[TaskRecord]:
        """Fail (`error_code="gateway_restarted"`) the active tasks of dead processes: those whose
        heartbeat stopped `orphan_after_seconds` ago, and at once those on this host whose pid is
        gone (a restart). Ownerless tasks past their deadline too. Each task is returned once across
        all processes (a guarded update decides), so the caller voids its hold exactly once; its
        `task.failed` webhook is queued in the same transaction."""
        now = now or datetime.now(UTC)
        dead_here = await self._dead_local_instances()
        live_workers = select(instances.c.id).where(
            instances.c.heartbeat_at >= now - self._orphan_after, instances.c.id.not_in(dead_here)
        )
        orphaned = or_(
            tasks.c.worker_id.not_in(live_workers),
            (tasks.c.worker_id.is_(None) & (tasks.c.deadline_at < now)),
        )
        query = (
            select(*_LIST_COLUMNS)
            .where(
                tasks.c.status.in_(ACTIVE_STATUSES),
                or_(tasks.c.worker_id.is_(None), tasks.c.worker_id != self.worker_id),
            )
            .where(orphaned)
            .order_by(tasks.c.id)
            .limit(_RECOVERY_BATCH)
        )
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            return []
        outcome = TaskOutcome(
            status="failed",
            error="The gateway restarted before the task finished; it was not charged.",
            error_code="gateway_restarted",
            zero_charge_reason="failed",
        )
        recovered: builtins.list[TaskRecord] = []
        outbox: builtins.list[dict[str, Any]] = []
        async with self.db.begin() as conn:
            for row in rows:
                record = row_to_record(row)
                apply_outcome(record, outcome, now, self._retention)
                values = {c: v for c, v in record_to_row(record).items() if c in FINISH_COLUMNS}
                result = await conn.execute(
                    update(tasks)
                    .where(tasks.c.id == record.id, tasks.c.status.in_(ACTIVE_STATUSES))
                    .values(values)
                )
                if result.rowcount == 1:
                    recovered.append(record)
                    outbox.extend(events_for_transition(record, "task.failed", now, self._max_payload))
            if outbox:
                await conn.execute(insert(webhook_outbox), outbox)
            # Instances silent for a day have no tasks left to recover.
            await conn.execute(delete(instances).where(instances.c.heartbeat_at < now - timedelta(days=1)))
        if outbox and self.on_outbox is not None:
            self.on_outbox()
        return recovered

    async def _dead_local_instances(self) -> builtins.list[str]:
        """Instances registered from this host and pid namespace whose process no longer exists:
        they died without waiting for their heartbeat to go stale."""
        if not self._host_key:
            return []
        async with self.db.connect() as conn:
            rows = (
                await conn.execute(
                    select(instances.c.id, instances.c.pid).where(
                        instances.c.host_key == self._host_key, instances.c.id != self.worker_id
                    )
                )
            ).all()
        return [r.id for r in rows if not _pid_alive(r.pid)]

    # --- internals ---

    def _require_writer(self) -> None:
        if self._writer is None:
            raise RuntimeError("TaskStore.start() was not called")

    async def _current(self, task_id: str) -> TaskRecord:
        """The store's own record of a task (mutable), loading it when it is not in memory."""
        task_id = task_id_for(task_id)
        live = self._live.get(task_id)
        if live is not None:
            return live
        for buffer in (self._dirty, self._held, self._inflight):
            pending = buffer.get(task_id)
            if pending is not None:
                return pending.record
        record = await self.find(task_id)
        if record is None:
            raise NotFound(f"No task found with id '{task_id}'.", code="task_not_found")
        return record

    async def _enqueue(
        self,
        record: TaskRecord,
        *,
        insert: bool = False,
        columns: tuple[str, ...] = (),
        outbox: builtins.list[dict[str, Any]] | None = None,
        defer: float = 0.0,
    ) -> None:
        self._require_writer()
        if record.id not in self._dirty and record.id not in self._held:
            # Backpressure: wait for the writer instead of growing without bound or dropping.
            while len(self._dirty) + len(self._inflight) + len(self._held) >= self._limit:
                self._space.clear()
                self._urgent.set()
                self._wake.set()
                await self._space.wait()
        pending = _Pending(record, insert)
        pending.columns.update(columns)
        if outbox:
            pending.outbox.extend(outbox)
        now = asyncio.get_running_loop().time()
        held = self._held.get(record.id)
        if held is not None:
            held.absorb(pending)
            if held.may_wait(now):
                return  # still running: stays in place (creation order)
            del self._held[record.id]
            pending = held
        elif defer > 0:
            pending.not_before = now + defer
            if pending.may_wait(now):
                if not self._held:
                    self._wake.set()  # the writer learns when the first held row comes due
                self._held[record.id] = pending
                return
        existing = self._dirty.get(record.id)
        if existing is not None:
            existing.absorb(pending)
        else:
            self._dirty[record.id] = pending
        self._wake.set()

    def _release_held(self, now: float, everything: bool) -> float | None:
        """Move deferred inserts that are due (all of them for a flush or shutdown) into the
        next batch; return when the next one still held comes due."""
        while self._held:
            task_id, pending = next(iter(self._held.items()))
            if not everything and pending.not_before > now:
                return pending.not_before
            del self._held[task_id]
            self._dirty[task_id] = pending
        return None

    async def _write_loop(self) -> None:
        backoff = self._interval
        failures_while_closing = 0
        loop = asyncio.get_running_loop()
        next_due: float | None = None
        while True:
            if not self._closing:
                if next_due is None:
                    await self._wake.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), max(0.0, next_due - loop.time()))
            if not self._urgent.is_set() and not self._closing:
                # Let a batch gather; a flush() or a full buffer cuts the wait short.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._interval)
            everything = self._urgent.is_set() or self._closing
            self._wake.clear()
            self._urgent.clear()
            next_due = self._release_held(loop.time(), everything)
            if not self._dirty:
                if self._closing:
                    return
                continue
            batch, self._dirty = self._dirty, {}
            self._inflight = batch
            gen = self._next_gen
            self._next_gen += 1
            try:
                wrote_outbox = await self._write(batch)
            except Exception:
                log.exception("task write of %d rows failed; keeping them and retrying", len(batch))
                # Put the batch back in front of anything newer, merging per task.
                merged = batch
                for task_id, newer in self._dirty.items():
                    if task_id in merged:
                        merged[task_id].absorb(newer)
                    else:
                        merged[task_id] = newer
                self._dirty = merged
                self._inflight = {}
                self._wake.set()
                if self._closing:
                    failures_while_closing += 1
                    if failures_while_closing >= _CLOSE_ATTEMPTS:
                        log.error("gave up writing %d task rows at shutdown", len(self._dirty))
                        return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = self._interval
            self._inflight = {}
            async with self._committed:
                self._committed_gen = gen
                self._committed.notify_all()
            self._space.set()
            if wrote_outbox and self.on_outbox is not None:
                self.on_outbox()

    async def _write(self, batch: dict[str, _Pending]) -> bool:
        """One transaction: inserts, updates grouped by column set, outbox rows. Rows are built
        before the first await, so later changes to the records cannot leak into this batch."""
        inserts: builtins.list[dict[str, Any]] = []
        updates: dict[tuple[str, ...], builtins.list[dict[str, Any]]] = {}
        outbox: builtins.list[dict[str, Any]] = []
        for task_id, pending in batch.items():
            row = record_to_row(pending.record)
            if pending.insert:
                inserts.append(row)
            elif pending.columns:
                cols = tuple(sorted(pending.columns))
                params: dict[str, Any] = {"b_id": task_id}
                params.update({"b_" + c: row[c] for c in cols})
                updates.setdefault(cols, []).append(params)
            outbox.extend(pending.outbox)
        async with self.db.batch("tasks") as tx:  # one trip on SQLite when no webhook is due
            tx.add(_INSERT_TASKS, inserts)
            for cols, rows in updates.items():
                tx.add(_update_statement(cols), rows)
            if outbox:
                await tx.run(_INSERT_OUTBOX, outbox)
        return bool(outbox)
