"""Per-API-key webhook signing secrets (`whsec_…`), rotatable with a 24 h overlap (§4.3)."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import select, update

from runapi.errors import NotFound
from runapi.store.database import Database
from runapi.store.schema import api_keys
from runapi.tasks.records import rfc3339, utc

OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    # Standard Webhooks: `whsec_` + base64 of 24 to 64 random bytes; we use 32.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookSecret(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /api/v1/api_keys/{id}/webhook_secret` and the rotate answer."""

    secret: str
    previous_secret_expires_at: str | None = None


class WebhookSecrets:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key_id: str, account_id: int) -> WebhookSecret:
        """The key's current secret; `NotFound` for a key of another account."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    select(api_keys.c.webhook_secret, api_keys.c.webhook_secret_previous_until).where(
                        api_keys.c.id == key_id, api_keys.c.account_id == account_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"No API key found with id '{key_id}'.")
        return WebhookSecret(secret=row.webhook_secret, previous_secret_expires_at=_overlap_end(row))

    async def rotate(self, key_id: str, account_id: int, *, keep_old_24h: bool) -> WebhookSecret:
        """A new secret; with `keep_old_24h` the old one also signs for 24 h (two `v1,` entries)."""
        fresh = new_secret()
        now = datetime.now(UTC)
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    select(api_keys.c.webhook_secret).where(
                        api_keys.c.id == key_id, api_keys.c.account_id == account_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"No API key found with id '{key_id}'.")
            until = now + OVERLAP if keep_old_24h else None
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(
                    webhook_secret=fresh,
                    webhook_secret_previous=row.webhook_secret if keep_old_24h else None,
                    webhook_secret_previous_until=until,
                )
            )
        return WebhookSecret(secret=fresh, previous_secret_expires_at=rfc3339(until))

    async def signing_secrets(self, key_id: str, now: datetime) -> list[str]:
        """The secrets to sign with now: the current one, plus the previous one during an overlap.
        Empty when the key no longer exists."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        api_keys.c.webhook_secret,
                        api_keys.c.webhook_secret_previous,
                        api_keys.c.webhook_secret_previous_until,
                    ).where(api_keys.c.id == key_id)
                )
            ).first()
        if row is None:
            return []
        out = [row.webhook_secret]
        until = utc(row.webhook_secret_previous_until)
        if row.webhook_secret_previous and until is not None and until > now:
            out.append(row.webhook_secret_previous)
        return out


def _overlap_end(row: object) -> str | None:
    until = utc(getattr(row, "webhook_secret_previous_until", None))
    if until is None or until <= datetime.now(UTC):
        return None
    return rfc3339(until)
