"""Ledger entry types, their idempotency keys, and the typed `meta` a charge carries.

Sign convention of `ledger_entries.amount_micros`: each entry is signed by its effect on the counter
it moves. Balance entries (`topup`, `charge`, `free_grant`, `refund`, `adjustment`,
`invoice_settlement`) sum to `accounts.balance_micros`; hold entries (`hold`, `hold_release`) sum
to `accounts.held_micros`. The tests check both invariants.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import msgspec
from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from runapi.canonical import Usage
from runapi.catalog import Prices
from runapi.ids import new_ulid
from runapi.store.database import Database
from runapi.store.schema import ledger_entries


class EntryType(StrEnum):
    TOPUP = "topup"
    HOLD = "hold"
    HOLD_RELEASE = "hold_release"
    CHARGE = "charge"
    FREE_GRANT = "free_grant"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    INVOICE_SETTLEMENT = "invoice_settlement"


BALANCE_TYPES = (
    EntryType.TOPUP,
    EntryType.CHARGE,
    EntryType.FREE_GRANT,
    EntryType.REFUND,
    EntryType.ADJUSTMENT,
    EntryType.INVOICE_SETTLEMENT,
)
HOLD_TYPES = (EntryType.HOLD, EntryType.HOLD_RELEASE)

# Why a task cost nothing (runapi-contract §3.5, §8.5); `expired` is the sweeper's hold release.
ZeroChargeReason = Literal["failed", "zero_completion", "canceled_before_start"]
ReleaseReason = Literal["posted", "failed", "zero_completion", "canceled_before_start", "expired"]


def task_key(task_id: str, entry: EntryType) -> str:
    """`task:{id}:hold`, `task:{id}:charge`, ...: one entry of each kind per task, ever."""
    return f"task:{task_id}:{entry.value}"


class TokenCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Tokens per billed class; `input` is uncached input, `output` includes reasoning."""

    input: int
    cached_input: int
    cache_write: int
    output: int
    reasoning: int = 0

    @classmethod
    def of(cls, usage: Usage) -> TokenCounts:
        return cls(
            input=usage.uncached_input_tokens,
            cached_input=usage.cached_input_tokens,
            cache_write=usage.cache_write_tokens,
            output=usage.output_tokens,
            reasoning=usage.reasoning_tokens,
        )


class UnitPrices(msgspec.Struct, frozen=True, kw_only=True):
    """USD per 1M tokens (= µ$ per token) per class, as applied to this charge."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal

    @classmethod
    def of(cls, prices: Prices) -> UnitPrices:
        return cls(
            input=prices.input,
            cached_input=prices.cache_read,
            cache_write=prices.cache_write,
            output=prices.output,
        )


class ChargeMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What a `charge` entry records: enough to rebuild the invoice line items and the task cost."""

    model: str
    tokens: TokenCounts
    unit_prices: UnitPrices
    price_schedule_id: int | None
    free_call: bool = False
    usage_source: str = "upstream"


class ReleaseMeta(msgspec.Struct, frozen=True, kw_only=True):
    reason: str  # a ReleaseReason


def encode_meta(meta: msgspec.Struct) -> dict[str, Any]:
    # Decimals become strings: the JSON column never sees a float.
    result: dict[str, Any] = msgspec.to_builtins(meta)
    return result


def decode_charge_meta(raw: Any) -> ChargeMeta:
    return msgspec.convert(raw, ChargeMeta, strict=False)


def entry_row(
    *,
    account_id: int,
    entry_type: EntryType,
    amount_micros: int,
    idempotency_key: str,
    created_at: datetime,
    task_id: str | None = None,
    meta: msgspec.Struct | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `ledger_entries` row with every column present, so rows batch into one INSERT."""
    return {
        "id": "le_" + new_ulid(),
        "account_id": account_id,
        "type": entry_type.value,
        "amount_micros": amount_micros,
        "task_id": task_id,
        "idempotency_key": idempotency_key,
        "created_at": created_at,
        "meta": encode_meta(meta) if isinstance(meta, msgspec.Struct) else meta,
    }


#: The plain ledger INSERT, built once (hot-path batches run it through `Database.bulk`).
INSERT_ENTRIES = insert(ledger_entries)


def dialect_insert(db: Database, table: Any) -> Insert:
    """`INSERT` with the dialect's `ON CONFLICT` support (SQLite and PostgreSQL share the syntax)."""
    if db.is_sqlite:
        return sqlite.insert(table)
    return postgresql.insert(table)


def insert_entries_once(db: Database) -> Insert:
    """Ledger inserts skip rows whose idempotency key exists: a retried step is a no-op (§8.3)."""
    stmt = dialect_insert(db, ledger_entries)
    conflict: Insert = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])  # type: ignore[attr-defined]
    return conflict.returning(ledger_entries.c.idempotency_key)


def utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
