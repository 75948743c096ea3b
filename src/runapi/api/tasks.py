"""Task routes (runapi-contract §3.6, §4): read, list, cancel, replay events, webhook deliveries,
and the per-key webhook signing secret. Errors are raised and rendered in the §5 envelope by the
app's error middleware."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from aiohttp import web

from runapi.api.common import authenticate, json_response, request_id, services
from runapi.auth import Principal
from runapi.errors import Gone, InvalidRequest, NotFound
from runapi.tasks.facade import Tasks
from runapi.tasks.records import TERMINAL_STATUSES, TaskList, TaskRecord
from runapi.tasks.webhooks.outbox import DeliveryAttempt

TASKS_EXTRA = "tasks"  # Services.extras key of the `Tasks` object
STATUSES = ("pending", "processing", *sorted(TERMINAL_STATUSES))
_KEEPALIVE_SECONDS = 15.0
_POLL_RETRY_AFTER = "2"  # RunAPI's poller sleeps for Retry-After (§2)


def tasks_of(request: web.Request) -> Tasks:
    svc = services(request)
    found = getattr(svc, "tasks", None) or svc.extras.get(TASKS_EXTRA)
    if not isinstance(found, Tasks):
        raise RuntimeError("the tasks service is not wired into Services")
    return found


def _headers(request: web.Request, record: TaskRecord | None = None) -> dict[str, str]:
    headers = {"x-request-id": request_id(request)}
    if record is not None:
        headers["X-RunAPI-Task-Id"] = record.id
        if not record.is_terminal:
            headers["Retry-After"] = _POLL_RETRY_AFTER
    return headers


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidRequest(f"`{name}` must be an integer from {low} to {high}.", param=name)
    return value


async def _authorized(request: web.Request) -> tuple[Tasks, Principal, TaskRecord]:
    principal = await authenticate(request)
    tasks = tasks_of(request)
    record = await tasks.store.get(request.match_info["task_id"], principal.account_id)
    return tasks, principal, record


async def get_task(request: web.Request) -> web.StreamResponse:
    """`GET /v1/tasks/{id}`: the task object; `Retry-After: 2` while it runs."""
    _, _, record = await _authorized(request)
    return json_response(record.to_api(), headers=_headers(request, record))


async def list_tasks(request: web.Request) -> web.StreamResponse:
    """`GET /v1/tasks?limit=&after=&status=&model=`: newest first, no response bodies."""
    principal = await authenticate(request)
    limit = _int_param(request, "limit", 20, 1, 100)
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"`status` must be one of {', '.join(STATUSES)}.", param="status")
    page = await tasks_of(request).store.list_tasks(
        principal.account_id,
        limit=limit,
        after=request.query.get("after") or None,
        status=status,
        model=request.query.get("model") or None,
    )
    data = [r.to_api(include_body=False) for r in page.records]
    body = TaskList(data=data, has_more=page.has_more, last_id=data[-1].id if data else None)
    return json_response(body, headers=_headers(request))


async def cancel_task(request: web.Request) -> web.StreamResponse:
    """`POST /v1/tasks/{id}/cancel`: idempotent; returns the task."""
    tasks, principal, record = await _authorized(request)
    record = await tasks.cancel(record.id, principal.account_id)
    return json_response(record.to_api(), headers=_headers(request, record))


def _starting_after(request: web.Request) -> int:
    raw = request.query.get("starting_after")
    if raw is None or raw == "":
        raw = request.headers.get("Last-Event-ID", "")
    if raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidRequest("`starting_after` must be a non-negative event number.", param="starting_after")
    return value


async def task_events(request: web.Request) -> web.StreamResponse:
    """`GET /v1/tasks/{id}/events`: SSE replay in the task's surface format, each event with an
    `id:` line; resume with `?starting_after=N` or `Last-Event-ID`. Live while the task runs here,
    synthesized from the stored body otherwise; 410 once the window after the end has passed."""
    tasks, _, record = await _authorized(request)
    after = _starting_after(request)
    window = timedelta(seconds=tasks.settings.tasks.events_window_seconds)
    state = tasks.events.state(record.id)
    if state == "unknown" and record.is_terminal:
        ended = record.completed_at or record.created_at
        if datetime.now(UTC) - ended > window or record.data_removed:
            raise Gone(
                "The events of this task are no longer kept; GET /v1/tasks/{id} holds the result.",
                code="events_expired",
            )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **_headers(request, record),
        }
    )
    response.headers.pop("Retry-After", None)
    await response.prepare(request)
    try:
        await _stream_events(response, tasks, record, state != "unknown", after)
    except ConnectionResetError:
        return response  # the client went away; nothing to clean up
    await response.write_eof()
    return response


async def _stream_events(
    response: web.StreamResponse, tasks: Tasks, record: TaskRecord, live_here: bool, after: int
) -> None:
    if live_here:
        logged = False
        async for seq, frame in tasks.events.follow(record.id, after, keepalive_seconds=_KEEPALIVE_SECONDS):
            logged = logged or seq > 0
            await response.write(b"id: %d\n" % seq + frame if seq else b": keep-alive\n\n")
        if logged or after > 0:
            return
        # An empty log: the stream failed before its first event (its caller got an HTTP
        # status); the stored outcome stands in for it, as for a task that ran elsewhere.
        record = await tasks.store.wait_terminal(record.id, _KEEPALIVE_SECONDS) or record
    final = record
    if not record.is_terminal:
        # Running in another process: wait for the end, keeping the connection alive.
        deadline = (record.deadline_at or datetime.now(UTC)) + timedelta(seconds=60)
        while True:
            done = await tasks.store.wait_terminal(record.id, _KEEPALIVE_SECONDS)
            if done is not None:
                final = done
                break
            if datetime.now(UTC) > deadline:
                return
            await response.write(b": keep-alive\n\n")
    for seq, frame in enumerate(tasks.replay_frames(final), start=1):
        if seq > after:
            await response.write(b"id: %d\n" % seq + frame)


class DeliveryList(msgspec.Struct, frozen=True, kw_only=True):
    data: list[DeliveryAttempt]
    callback_url: str | None
    callback_succeeded: bool | None
    object: str = "list"


async def task_deliveries(request: web.Request) -> web.StreamResponse:
    """`GET /v1/tasks/{id}/deliveries`: the webhook attempt log (§4.4)."""
    tasks, _, record = await _authorized(request)
    attempts = await tasks.outbox.attempts(record.id)
    body = DeliveryList(
        data=attempts, callback_url=record.callback_url, callback_succeeded=record.callback_succeeded
    )
    return json_response(body, headers=_headers(request, record))


class Redelivery(msgspec.Struct, frozen=True, kw_only=True):
    webhook_id: str
    status: str = "queued"
    object: str = "webhook_delivery"


async def redeliver(request: web.Request) -> web.StreamResponse:
    """`POST /v1/tasks/{id}/deliveries/redeliver`: the latest event again, same `webhook-id`."""
    tasks, _, record = await _authorized(request)
    await tasks.store.flush()  # the event of a task that just ended may still be buffered
    webhook_id = await tasks.outbox.redeliver(record.id)
    if webhook_id is None:
        raise NotFound("This task has no webhook event to redeliver.", code="no_webhook_event")
    tasks.dispatcher.wake()
    return json_response(Redelivery(webhook_id=webhook_id), status=202, headers=_headers(request, record))


async def get_webhook_secret(request: web.Request) -> web.StreamResponse:
    """`GET /api/v1/api_keys/{id}/webhook_secret` → `{"secret": "whsec_..."}` (keys of the caller's
    account only)."""
    principal = await authenticate(request)
    secret = await tasks_of(request).secrets.get(request.match_info["key_id"], principal.account_id)
    return json_response(secret, headers=_headers(request))


class RotateBody(msgspec.Struct, frozen=True, kw_only=True):
    keep_old_secret_active_for_24_hours: bool = False  # OpenAI's flag


async def rotate_webhook_secret(request: web.Request) -> web.StreamResponse:
    """`POST /api/v1/api_keys/{id}/webhook_secret/rotate` with optional
    `{"keep_old_secret_active_for_24_hours": true}`: both secrets sign during the overlap."""
    principal = await authenticate(request)
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw, type=RotateBody) if raw.strip() else RotateBody()
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"Invalid body: {exc}.") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest("The body is not valid JSON.") from exc
    secret = await tasks_of(request).secrets.rotate(
        request.match_info["key_id"],
        principal.account_id,
        keep_old_24h=body.keep_old_secret_active_for_24_hours,
    )
    return json_response(secret, headers=_headers(request))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/tasks", list_tasks),
        web.get("/v1/tasks/{task_id}", get_task),
        web.post("/v1/tasks/{task_id}/cancel", cancel_task),
        web.get("/v1/tasks/{task_id}/events", task_events),
        web.get("/v1/tasks/{task_id}/deliveries", task_deliveries),
        web.post("/v1/tasks/{task_id}/deliveries/redeliver", redeliver),
        web.get("/api/v1/api_keys/{key_id}/webhook_secret", get_webhook_secret),
        web.post("/api/v1/api_keys/{key_id}/webhook_secret/rotate", rotate_webhook_secret),
    ]


__all__ = ["TASKS_EXTRA", "routes", "tasks_of"]
