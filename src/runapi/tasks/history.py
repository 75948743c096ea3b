"""Stored conversation history for `/v1/responses` with an explicit `store: true`.

The one exception to "inputs are never stored" (runapi-contract §3.2): `previous_response_id`
needs the earlier turns. Rows expire with the task's retention and go with `DELETE`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import delete, select

from runapi.canonical import Message
from runapi.store.database import Database
from runapi.store.schema import response_inputs

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[Message])


class ResponseHistory:
    def __init__(self, db: Database, retention_days: float) -> None:
        self.db = db
        self.retention = timedelta(days=retention_days)

    async def save(self, task_id: str, messages: list[Message]) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(response_inputs).where(response_inputs.c.task_id == task_id))
            await conn.execute(
                response_inputs.insert().values(
                    task_id=task_id,
                    items=_encoder.encode(messages).decode(),
                    expires_at=datetime.now(UTC) + self.retention,
                )
            )

    async def load(self, task_id: str) -> list[Message] | None:
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    select(response_inputs.c["items"], response_inputs.c.expires_at).where(
                        response_inputs.c.task_id == task_id
                    )
                )
            ).first()
        if row is None:
            return None
        # `items` is also a method of SQLAlchemy's column collection and row: index by name.
        expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
        if expires < datetime.now(UTC):
            return None
        return _decoder.decode(row._mapping["items"])

    async def delete(self, task_id: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(response_inputs).where(response_inputs.c.task_id == task_id))
