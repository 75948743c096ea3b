"""Deployment-wide secrets, created once and shared by every gateway process."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from runapi.store.database import Database
from runapi.store.schema import gateway_secrets


async def shared_secret(db: Database, name: str, nbytes: int = 32) -> bytes:
    """Read the named secret, creating it on first use. Two processes racing to create it both
    end up with the winner's value: the insert is keyed on the name."""
    async with db.connect() as conn:
        row = (
            await conn.execute(select(gateway_secrets.c.value).where(gateway_secrets.c.name == name))
        ).first()
    if row is not None:
        return bytes.fromhex(row.value)
    try:
        async with db.begin() as conn:
            await conn.execute(
                gateway_secrets.insert().values(
                    name=name, value=secrets.token_hex(nbytes), created_at=datetime.now(UTC)
                )
            )
    except IntegrityError:
        pass
    async with db.connect() as conn:
        value = (
            await conn.execute(select(gateway_secrets.c.value).where(gateway_secrets.c.name == name))
        ).scalar_one()
    return bytes.fromhex(value)
