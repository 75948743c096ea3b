"""Cost and usage of one generation, read from its task row (`GET /api/v1/generation`, §8.7).

The task row is written by the tasks package; billing only reads the usage and cost columns, which
the pipeline fills from the settlement before the terminal event is sent, so the record is
readable as soon as the client has seen the end of its response.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import select

from runapi.errors import NotFound
from runapi.ids import strip_prefix
from runapi.store.database import Database
from runapi.store.schema import tasks

from .entries import utc

TERMINAL = frozenset({"completed", "failed", "canceled"})


class GenerationRecord(msgspec.Struct, frozen=True, kw_only=True):
    task_id: str
    surface_id: str
    upstream_id: str | None
    model: str
    status: str
    streamed: bool
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    finish_reason: str | None
    input_tokens: int | None
    cached_input_tokens: int | None
    cache_write_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    usage_source: str | None
    cost_micros: int | None
    billed: bool | None
    free_call: bool
    zero_charge_reason: str | None
    price_schedule_id: int | None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


_COLUMNS = (
    tasks.c.id,
    tasks.c.surface_id,
    tasks.c.upstream_id,
    tasks.c.model,
    tasks.c.status,
    tasks.c.streamed,
    tasks.c.created_at,
    tasks.c.started_at,
    tasks.c.completed_at,
    tasks.c.finish_reason,
    tasks.c.input_tokens,
    tasks.c.cached_input_tokens,
    tasks.c.cache_write_tokens,
    tasks.c.output_tokens,
    tasks.c.reasoning_tokens,
    tasks.c.usage_source,
    tasks.c.cost_micros,
    tasks.c.billed,
    tasks.c.free_call,
    tasks.c.zero_charge_reason,
    tasks.c.price_schedule_id,
)


async def find_generation(db: Database, account_id: int, ident: str) -> GenerationRecord:
    """By task id or any surface id (`chatcmpl-…`, `resp_…`, `msg_…`), of this account only."""
    task_id = "task_" + strip_prefix(ident.strip())
    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(*_COLUMNS).where(tasks.c.id == task_id, tasks.c.account_id == account_id)
            )
        ).first()
    if row is None:
        raise NotFound(f"Generation {ident} not found.")
    return GenerationRecord(
        task_id=row.id,
        surface_id=row.surface_id,
        upstream_id=row.upstream_id,
        model=row.model,
        status=row.status,
        streamed=bool(row.streamed),
        created_at=utc(row.created_at),
        started_at=utc(row.started_at) if row.started_at else None,
        completed_at=utc(row.completed_at) if row.completed_at else None,
        finish_reason=row.finish_reason,
        input_tokens=row.input_tokens,
        cached_input_tokens=row.cached_input_tokens,
        cache_write_tokens=row.cache_write_tokens,
        output_tokens=row.output_tokens,
        reasoning_tokens=row.reasoning_tokens,
        usage_source=row.usage_source,
        cost_micros=row.cost_micros,
        billed=row.billed,
        free_call=bool(row.free_call),
        zero_charge_reason=row.zero_charge_reason,
        price_schedule_id=row.price_schedule_id,
    )
