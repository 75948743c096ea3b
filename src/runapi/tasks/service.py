"""The public face of the tasks package: what the pipeline, the app and the routes call.

Every generation is a task (runapi-contract §3). This package stores its outputs (never inputs),
replays its events, runs async work, guards idempotency keys and delivers signed webhooks.

Wiring (app factory), one `Tasks` per process:

    tasks = Tasks(db, settings, replay_frames=render_stored_body_as_sse)
    services.extras["tasks"] = tasks              # routes find it there (or as `services.tasks`)
    app.router.add_routes(runapi.api.tasks.routes())
    on startup: await tasks.start(on_orphans=void_holds_of)   # recovery runs once before it returns
    on cleanup: await tasks.close()                            # drain async work, flush, stop loops

Per generation (the pipeline orders the steps):

    check_callback_url(url, settings.webhooks)          # sync, no DNS; or await validate_callback_url
    fp = request_fingerprint("POST", path, raw_body)
    claim = await tasks.idempotency.claim(key_id, idem_key, fp, "task_" + ulid)   # Conflict → 409
    if not claim.owner:
        done = await tasks.store.wait_terminal(claim.task_id, seconds)   # polls until it exists/ends
        ... or follow tasks.events / answer 202 ...
    ... admission rejected → await tasks.idempotency.release(key_id, idem_key, "task_" + ulid)
    record = TaskRecord.new(ulid=ulid, account_id=..., api_key_id=..., model=..., endpoint=...,
                            surface_prefix="chatcmpl-", mode=..., settings=settings.tasks, ...)
    record.idempotency_key, record.request_fingerprint = idem_key, fp
    await tasks.store.create(record, durable=(mode == "async"))   # never blocks on the DB otherwise
    tasks.events.open(record.id)                                 # stream / async: /events replay
    with tasks.runner.track(record.id): ...                      # sync/stream: cancellable by id
    tasks.runner.submit(record.id, run())                        # async: run() enters runner.slot()
    await tasks.store.mark_processing(record.id)                 # upstream call starts
    tasks.events.append(record.id, sse_frame)                    # each frame, no `id:` line
    await tasks.store.finish(record.id, TaskOutcome(...))        # queues the webhook, same txn
    tasks.events.finish(record.id)
    except asyncio.CancelledError as exc: cancel_reason(exc) → CANCEL_BY_CALLER | CANCEL_SHUTDOWN | None

Alternatively `await tasks.store.create_idempotent(record)` claims the key and inserts the task
in one transaction (when the claim can come after admission).
"""

from __future__ import annotations

from runapi.tasks.events import ReplayFrames, TaskEvents
from runapi.tasks.facade import OrphanHandler, Tasks, stored_body_replay
from runapi.tasks.idempotency import Claim, IdempotencyStore, request_fingerprint
from runapi.tasks.records import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Endpoint,
    ResponseEnvelope,
    TaskCost,
    TaskList,
    TaskMode,
    TaskObject,
    TaskOutcome,
    TaskRecord,
    TaskResponse,
    TaskStatus,
    TaskUsage,
    TerminalStatus,
    task_id_for,
)
from runapi.tasks.runner import CANCEL_BY_CALLER, CANCEL_SHUTDOWN, AsyncRunner, cancel_reason
from runapi.tasks.store import TaskPage, TaskStore
from runapi.tasks.webhooks.dispatcher import WebhookDispatcher
from runapi.tasks.webhooks.outbox import DeliveryAttempt, WebhookOutbox, build_event, event_payload
from runapi.tasks.webhooks.secrets import WebhookSecret, WebhookSecrets
from runapi.tasks.webhooks.ssrf import check_callback_url, validate_callback_url

__all__ = [
    "ACTIVE_STATUSES",
    "CANCEL_BY_CALLER",
    "CANCEL_SHUTDOWN",
    "TERMINAL_STATUSES",
    "AsyncRunner",
    "Claim",
    "DeliveryAttempt",
    "Endpoint",
    "IdempotencyStore",
    "OrphanHandler",
    "ReplayFrames",
    "ResponseEnvelope",
    "TaskCost",
    "TaskEvents",
    "TaskList",
    "TaskMode",
    "TaskObject",
    "TaskOutcome",
    "TaskPage",
    "TaskRecord",
    "TaskResponse",
    "TaskStatus",
    "TaskStore",
    "TaskUsage",
    "Tasks",
    "TerminalStatus",
    "WebhookDispatcher",
    "WebhookOutbox",
    "WebhookSecret",
    "WebhookSecrets",
    "build_event",
    "cancel_reason",
    "check_callback_url",
    "event_payload",
    "request_fingerprint",
    "stored_body_replay",
    "task_id_for",
    "validate_callback_url",
]
