"""What a task is: the stored record, the outcome the pipeline reports, and the wire object.

Outputs only (runapi-contract §3.2): no field here can hold a message, an instruction or a tool
definition. The response body is kept as the raw JSON bytes the surface produced, so serving a
task never re-decodes it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, overload

import msgspec

from runapi.canonical.types import Usage
from runapi.ids import new_ulid, strip_prefix
from runapi.settings import TaskSettings

TaskStatus = Literal["pending", "processing", "completed", "failed", "canceled"]
TerminalStatus = Literal["completed", "failed", "canceled"]
TaskMode = Literal["sync", "stream", "async"]
Endpoint = Literal["chat.completions", "responses", "messages"]

ACTIVE_STATUSES: tuple[TaskStatus, ...] = ("pending", "processing")
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "canceled"})
DEFAULT_EVENTS_FILTER: tuple[str, ...] = ("completed",)


def task_id_for(identifier: str) -> str:
    """`task_<ulid>`, `chatcmpl-<ulid>`, `resp_<ulid>` and `msg_<ulid>` all name one task (§3.1)."""
    return "task_" + strip_prefix(identifier)


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
@overload
def utc(value: datetime | None) -> datetime | None: ...
def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def rfc3339(value: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds: `2026-07-14T09:30:00.123Z`."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def micros_to_usd(micros: int) -> str:
    """The ledger's integer micro-dollars as the decimal string of `cost.amount` (§3.5)."""
    return f"{Decimal(micros).scaleb(-6):.6f}"


class ResponseEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """What the synchronous call returned (or would have): RunAPI's hybrid `response` (§3.4)."""

    status: int
    body: bytes  # the surface's final JSON body, exactly as encoded
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    content_type: str = "application/json"


class TaskOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The end of a task as the pipeline reports it to `TaskStore.finish`."""

    status: TerminalStatus
    finish_reason: str | None = None
    usage: Usage | None = None
    cost_micros: int = 0
    billed: bool = False
    free_call: bool = False
    zero_charge_reason: str | None = None  # failed | zero_completion | canceled_before_start
    price_schedule_id: int | None = None
    error: str | None = None
    error_code: str | None = None
    upstream_id: str | None = None
    response: ResponseEnvelope | None = None


class TaskRecord(msgspec.Struct, kw_only=True):
    """One generation as the gateway stores it (one row of `tasks`)."""

    id: str  # task_<ulid>
    account_id: int
    api_key_id: str
    model: str
    endpoint: Endpoint
    surface_id: str  # chatcmpl-<ulid> | resp_<ulid> | msg_<ulid>: the same ULID as `id`
    created_at: datetime
    status: TaskStatus = "pending"
    mode: TaskMode = "sync"
    streamed: bool = False
    client_request_id: str | None = None
    upstream_id: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    deadline_at: datetime | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    cost_micros: int | None = None
    billed: bool | None = None
    free_call: bool = False
    zero_charge_reason: str | None = None
    price_schedule_id: int | None = None
    error: str | None = None
    error_code: str | None = None
    callback_url: str | None = None
    webhook_events_filter: tuple[str, ...] | None = None  # None: ("completed",)
    callback_succeeded: bool | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    response: ResponseEnvelope | None = None
    data_removed: bool = False
    worker_id: str | None = None  # the gateway process that runs it (orphan recovery)

    @classmethod
    def new(
        cls,
        *,
        account_id: int,
        api_key_id: str,
        model: str,
        endpoint: Endpoint,
        surface_prefix: str,
        settings: TaskSettings,
        mode: TaskMode = "sync",
        streamed: bool = False,
        client_request_id: str | None = None,
        callback_url: str | None = None,
        webhook_events_filter: tuple[str, ...] | None = None,
        ulid: str | None = None,
        now: datetime | None = None,
    ) -> TaskRecord:
        """A fresh `pending` task. `surface_prefix` is `chatcmpl-`, `resp_` or `msg_`; the task and
        surface ids share one ULID (`ulid`, or a new one), so either resolves to the task."""
        ulid = ulid or new_ulid()
        created = now or datetime.now(UTC)
        return cls(
            id="task_" + ulid,
            account_id=account_id,
            api_key_id=api_key_id,
            model=model,
            endpoint=endpoint,
            surface_id=surface_prefix + ulid,
            created_at=created,
            mode=mode,
            streamed=streamed,
            client_request_id=client_request_id,
            deadline_at=created + timedelta(seconds=settings.deadline_seconds),
            callback_url=callback_url,
            webhook_events_filter=webhook_events_filter,
        )

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def events_filter(self) -> tuple[str, ...]:
        return self.webhook_events_filter or DEFAULT_EVENTS_FILTER

    def to_api(self, *, include_body: bool = True, idempotent_replay: bool = False) -> TaskObject:
        """The §3.5 task object. List items pass `include_body=False` (§3.6)."""
        usage = None
        if self.usage is not None:
            u = self.usage
            usage = TaskUsage(
                input_tokens=u.input_tokens,
                cached_input_tokens=u.cached_input_tokens,
                cache_write_tokens=u.cache_write_tokens,
                output_tokens=u.output_tokens,
                reasoning_tokens=u.reasoning_tokens,
                usage_source=u.source,
            )
        cost = None
        if self.cost_micros is not None:
            cost = TaskCost(
                amount=micros_to_usd(self.cost_micros),
                amount_micros=self.cost_micros,
                billed=bool(self.billed),
                free_call=self.free_call,
                zero_charge_reason=self.zero_charge_reason,
            )
        response = None
        if self.response is not None and not self.data_removed:
            r = self.response
            response = TaskResponse(
                status=r.status,
                content_type=r.content_type,
                headers=r.headers,
                body=msgspec.Raw(r.body) if include_body and r.body else msgspec.UNSET,
            )
        return TaskObject(
            id=self.id,
            status=self.status,
            model=self.model,
            endpoint=self.endpoint,
            surface_id=self.surface_id,
            streamed=self.streamed,
            client_request_id=self.client_request_id,
            created_at=rfc3339(self.created_at) or "",
            started_at=rfc3339(self.started_at),
            completed_at=rfc3339(self.completed_at),
            expires_at=rfc3339(self.expires_at),
            finish_reason=self.finish_reason,
            usage=usage,
            cost=cost,
            error=self.error,
            error_code=self.error_code,
            callback_url=self.callback_url,
            callback_succeeded=self.callback_succeeded,
            idempotent_replay=idempotent_replay,
            data_removed=self.data_removed,
            response=response,
        )


# --- wire objects (runapi-contract §3.5), fields in the contract's order ---


class TaskUsage(msgspec.Struct, frozen=True, kw_only=True):
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    usage_source: str


class TaskCost(msgspec.Struct, frozen=True, kw_only=True):
    amount: str
    amount_micros: int
    billed: bool
    free_call: bool
    zero_charge_reason: str | None
    currency: str = "USD"


class TaskResponse(msgspec.Struct, frozen=True, kw_only=True):
    status: int
    content_type: str
    headers: dict[str, str]
    # Left out (not null) in list items and oversized webhook payloads.
    body: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class TaskObject(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: str
    model: str
    endpoint: str
    surface_id: str
    streamed: bool
    client_request_id: str | None
    created_at: str
    started_at: str | None
    completed_at: str | None
    expires_at: str | None
    finish_reason: str | None
    usage: TaskUsage | None
    cost: TaskCost | None
    error: str | None
    error_code: str | None
    callback_url: str | None
    callback_succeeded: bool | None
    idempotent_replay: bool
    data_removed: bool
    response: TaskResponse | None
    object: str = "task"


class TaskList(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/tasks`: a cursor page, newest first."""

    data: list[TaskObject]
    has_more: bool
    last_id: str | None
    object: str = "list"


# --- rows ---

_SIMPLE_COLUMNS = (
    "id",
    "account_id",
    "api_key_id",
    "model",
    "endpoint",
    "surface_id",
    "status",
    "mode",
    "streamed",
    "client_request_id",
    "upstream_id",
    "created_at",
    "started_at",
    "completed_at",
    "expires_at",
    "deadline_at",
    "finish_reason",
    "cost_micros",
    "billed",
    "free_call",
    "zero_charge_reason",
    "price_schedule_id",
    "error",
    "error_code",
    "callback_url",
    "callback_succeeded",
    "idempotency_key",
    "request_fingerprint",
    "data_removed",
    "worker_id",
)
_USAGE_COLUMNS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "usage_source",
)
_RESPONSE_COLUMNS = ("response_status", "response_headers", "response_body")
ROW_COLUMNS: tuple[str, ...] = (
    *_SIMPLE_COLUMNS,
    "webhook_events_filter",
    *_USAGE_COLUMNS,
    *_RESPONSE_COLUMNS,
)


def record_to_row(record: TaskRecord) -> dict[str, Any]:
    """All columns of the `tasks` row for this record."""
    row: dict[str, Any] = {name: getattr(record, name) for name in _SIMPLE_COLUMNS}
    row["webhook_events_filter"] = (
        list(record.webhook_events_filter) if record.webhook_events_filter is not None else None
    )
    u = record.usage
    row["input_tokens"] = u.input_tokens if u else None
    row["cached_input_tokens"] = u.cached_input_tokens if u else None
    row["cache_write_tokens"] = u.cache_write_tokens if u else None
    row["output_tokens"] = u.output_tokens if u else None
    row["reasoning_tokens"] = u.reasoning_tokens if u else None
    row["usage_source"] = u.source if u else None
    r = record.response
    row["response_status"] = r.status if r else None
    row["response_headers"] = r.headers if r else None
    row["response_body"] = r.body.decode() if r else None
    return row


def row_to_record(row: Any) -> TaskRecord:
    """A `tasks` row (SQLAlchemy Row or mapping) back to a record. A row read without
    `response_body` (listings) gets an empty body."""
    m = row._mapping if hasattr(row, "_mapping") else row
    usage = None
    if m["input_tokens"] is not None:
        usage = Usage(
            input_tokens=m["input_tokens"],
            output_tokens=m["output_tokens"] or 0,
            cached_input_tokens=m["cached_input_tokens"] or 0,
            cache_write_tokens=m["cache_write_tokens"] or 0,
            reasoning_tokens=m["reasoning_tokens"] or 0,
            source="estimated" if m["usage_source"] == "estimated" else "upstream",
        )
    response = None
    if m["response_status"] is not None:
        body = m.get("response_body") if hasattr(m, "get") else None
        response = ResponseEnvelope(
            status=m["response_status"],
            headers=dict(m["response_headers"] or {}),
            body=body.encode() if body else b"",
        )
    events_filter = m["webhook_events_filter"]
    created = utc(m["created_at"])
    assert created is not None
    return TaskRecord(
        id=m["id"],
        account_id=m["account_id"],
        api_key_id=m["api_key_id"],
        model=m["model"],
        endpoint=m["endpoint"],
        surface_id=m["surface_id"],
        created_at=created,
        status=m["status"],
        mode=m["mode"],
        streamed=bool(m["streamed"]),
        client_request_id=m["client_request_id"],
        upstream_id=m["upstream_id"],
        started_at=utc(m["started_at"]),
        completed_at=utc(m["completed_at"]),
        expires_at=utc(m["expires_at"]),
        deadline_at=utc(m["deadline_at"]),
        finish_reason=m["finish_reason"],
        usage=usage,
        cost_micros=m["cost_micros"],
        billed=m["billed"],
        free_call=bool(m["free_call"]),
        zero_charge_reason=m["zero_charge_reason"],
        price_schedule_id=m["price_schedule_id"],
        error=m["error"],
        error_code=m["error_code"],
        callback_url=m["callback_url"],
        webhook_events_filter=tuple(events_filter) if events_filter is not None else None,
        callback_succeeded=m["callback_succeeded"],
        idempotency_key=m["idempotency_key"],
        request_fingerprint=m["request_fingerprint"],
        response=response,
        data_removed=bool(m["data_removed"]),
        worker_id=m["worker_id"],
    )


def apply_outcome(record: TaskRecord, outcome: TaskOutcome, now: datetime, retention: timedelta) -> None:
    """Move a record to its terminal state (in place)."""
    record.status = outcome.status
    record.completed_at = now
    record.expires_at = now + retention
    record.finish_reason = outcome.finish_reason
    record.usage = outcome.usage
    record.cost_micros = outcome.cost_micros
    record.billed = outcome.billed
    record.free_call = outcome.free_call
    record.zero_charge_reason = outcome.zero_charge_reason
    record.price_schedule_id = outcome.price_schedule_id
    record.error = outcome.error
    record.error_code = outcome.error_code
    if outcome.upstream_id is not None:
        record.upstream_id = outcome.upstream_id
    record.response = outcome.response


# The columns a terminal transition writes (the write-behind groups updates by column set).
FINISH_COLUMNS: tuple[str, ...] = (
    "status",
    "completed_at",
    "expires_at",
    "finish_reason",
    "cost_micros",
    "billed",
    "free_call",
    "zero_charge_reason",
    "price_schedule_id",
    "error",
    "error_code",
    "upstream_id",
    *_USAGE_COLUMNS,
    *_RESPONSE_COLUMNS,
)
START_COLUMNS: tuple[str, ...] = ("status", "started_at")
