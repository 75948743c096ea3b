"""Key material: secrets are shown once and stored only as sha256 digests."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

KEY_PREFIX = "sk-ra-"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: the key and its account, as authentication resolved them."""

    key_id: str
    account_id: int
    account_created_at: datetime
    tier: int
    limit_overrides: dict[str, Any] | None = None


def generate_key_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def generate_webhook_secret() -> str:
    # Standard Webhooks: `whsec_` + base64 of 24-64 random bytes; we use 32.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def hash_key(secret: str) -> str:
    # A fast hash is right here: keys are high-entropy random strings, not passwords.
    return hashlib.sha256(secret.encode()).hexdigest()


def key_hint(secret: str) -> str:
    return f"{secret[:6]}…{secret[-4:]}"


def valid_imported_secret(secret: str) -> bool:
    """Imported keys (`--value`, e.g. migrating from another gateway): printable, 8+ chars."""
    return len(secret) >= 8 and secret.isprintable() and not any(c.isspace() for c in secret)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key a request presents: `Authorization: Bearer …` (OpenAI) or `x-api-key` (Anthropic)."""
    auth = headers.get("Authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or None
