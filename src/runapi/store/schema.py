"""The database schema (SQLAlchemy Core). Alembic migrations are generated from this module.

Money columns are BigInteger micro-dollars; ids are time-ordered text (ULIDs) except account ids,
which RunAPI's SDK types declare as numbers. Inputs of a generation are never stored here, with one
opt-in exception: `response_inputs`, for `/v1/responses` calls that send `store: true`.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TS = DateTime(timezone=True)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320)),
    Column("created_at", TS, nullable=False),
    # Posted balance and open holds; available = balance - held (runapi-contract §8.3).
    Column("balance_micros", BigInteger, nullable=False, default=0),
    Column("held_micros", BigInteger, nullable=False, default=0),
    # Promotional credit is spent before paid credit and does not count toward tiers.
    Column("bonus_micros", BigInteger, nullable=False, default=0),
    Column("paid_total_micros", BigInteger, nullable=False, default=0),
    Column("spent_total_micros", BigInteger, nullable=False, default=0),
    Column("first_payment_at", TS),
    Column("tier", Integer, nullable=False, default=0),
    Column("tier_pinned", Boolean, nullable=False, default=False),
    Column("postpaid", Boolean, nullable=False, default=False),
    Column("monthly_cap_micros", BigInteger),
    # Spend of the current UTC month (postpaid cap guard, runapi-contract §8.4); reset by the first
    # settlement of a new month, so the guard never sums the ledger.
    Column("spend_month", String(7)),
    Column("spend_month_micros", BigInteger, nullable=False, default=0, server_default="0"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(200)),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(32), nullable=False),  # "sk-ra-…abcd", for listings
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS),
    Column("webhook_secret", String(128), nullable=False),
    Column("webhook_secret_previous", String(128)),
    Column("webhook_secret_previous_until", TS),
    # Operator overrides below the tier ceiling: {"model_class": {"rpm": .., "itpm": ..}}.
    Column("limit_overrides", JSON),
)

price_schedules = Table(
    "price_schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("currency", String(3), nullable=False, default="USD"),
    # Decimal strings, never floats.
    Column("input_per_1m", String(32), nullable=False),
    Column("cached_input_per_1m", String(32), nullable=False),
    Column("cache_write_per_1m", String(32), nullable=False),
    Column("output_per_1m", String(32), nullable=False),
    Column("input_tiers", JSON),
    Column("effective_from", TS, nullable=False),
    UniqueConstraint("model", "effective_from", name="uq_price_schedules_model_effective"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    # topup | hold | hold_release | charge | free_grant | refund | adjustment | invoice_settlement
    Column("type", String(24), nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    Column("task_id", String(40)),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("meta", JSON),
    Index("ix_ledger_account_created", "account_id", "created_at"),
    Index("ix_ledger_task", "task_id"),
)

holds = Table(
    "holds",
    metadata,
    Column("task_id", String(40), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    Column("status", String(12), nullable=False),  # open | posted | voided
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Index("ix_holds_status_expires", "status", "expires_at"),
)

free_grants = Table(
    "free_grants",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("status", String(12), nullable=False),  # available | reserved | consumed
    Column("task_id", String(40)),
    Column("updated_at", TS, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(40), primary_key=True),  # task_<ulid>
    Column("account_id", Integer, nullable=False),
    Column("api_key_id", String(40), nullable=False),
    Column("model", String(200), nullable=False),
    Column("endpoint", String(32), nullable=False),  # chat.completions | responses | messages
    Column("surface_id", String(64), nullable=False),
    Column("status", String(12), nullable=False),
    Column("streamed", Boolean, nullable=False, default=False),
    Column("mode", String(12), nullable=False, default="sync"),  # sync | stream | async
    Column("client_request_id", String(512)),
    Column("upstream_id", String(200)),
    Column("created_at", TS, nullable=False),
    Column("started_at", TS),
    Column("completed_at", TS),
    Column("expires_at", TS),
    Column("deadline_at", TS),
    Column("finish_reason", String(32)),
    Column("input_tokens", Integer),
    Column("cached_input_tokens", Integer),
    Column("cache_write_tokens", Integer),
    Column("output_tokens", Integer),
    Column("reasoning_tokens", Integer),
    Column("usage_source", String(12)),
    Column("cost_micros", BigInteger),
    Column("billed", Boolean),
    Column("free_call", Boolean, nullable=False, default=False),
    Column("zero_charge_reason", String(32)),
    Column("price_schedule_id", Integer),
    Column("error", Text),
    Column("error_code", String(64)),
    Column("callback_url", String(2048)),
    Column("webhook_events_filter", JSON),
    Column("callback_succeeded", Boolean),
    Column("idempotency_key", String(512)),
    Column("request_fingerprint", String(64)),
    Column("response_status", Integer),
    Column("response_headers", JSON),
    Column("response_body", Text),  # the surface's final JSON body (outputs only)
    Column("data_removed", Boolean, nullable=False, default=False),
    # The gateway process running the task (`instances.id`) and a cancel asked of it by another
    # process; restart recovery fails the active tasks of processes whose heartbeat stopped.
    Column("worker_id", String(40)),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Index("ix_tasks_account_id", "account_id", "id"),
    Index("ix_tasks_status", "status"),
    Index("ix_tasks_expires", "expires_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("api_key_id", String(40), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("task_id", String(40), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
)

webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", String(40), primary_key=True),  # evt_<ulid>, the webhook-id, same on retries
    Column("task_id", String(40), nullable=False, index=True),
    Column("api_key_id", String(40), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(12), nullable=False),  # pending | delivered | failed | stopped
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", TS),
    Column("created_at", TS, nullable=False),
    Column("locked_until", TS),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)

# A 410 Gone stops delivery to that URL for that key (runapi-contract §4.4).
webhook_stopped_urls = Table(
    "webhook_stopped_urls",
    metadata,
    Column("api_key_id", String(40), primary_key=True),
    Column("url", String(2048), primary_key=True),
    Column("stopped_at", TS, nullable=False),
    # gone: the receiver answered 410; paused: it failed without a break for
    # `webhooks.pause_after_seconds` (5 days). A redelivery lifts either.
    Column("reason", String(16), nullable=False, server_default="gone"),
)

# Receivers failing now, per key and URL: since when, with no success in between (the pause rule).
webhook_failing_urls = Table(
    "webhook_failing_urls",
    metadata,
    Column("api_key_id", String(40), primary_key=True),
    Column("url", String(2048), primary_key=True),
    Column("failing_since", TS, nullable=False),
)

# Console sign-ins (`console/sessions.py`), here so that every gateway process knows them. The
# token itself is never stored, only its SHA-256; `principal` is what the key resolved to.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("csrf", String(64), nullable=False),
    Column("key_id", String(40)),  # None: the operator (admin key)
    Column("principal", JSON),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Index("ix_console_sessions_key", "key_id", "created_at"),
    Index("ix_console_sessions_expires", "expires_at"),
)

# Live gateway processes, by heartbeat; tasks of a process that stopped beating are orphans.
instances = Table(
    "instances",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    # hostname|boot id|pid namespace: equal keys mean `pid` is checkable from here.
    Column("host_key", String(200), nullable=False, default=""),
    Column("started_at", TS, nullable=False),
    Column("heartbeat_at", TS, nullable=False),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False, index=True),
    Column("task_id", String(40), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("at", TS, nullable=False),
    Column("status_code", Integer),
    Column("duration_ms", Float),
    Column("error", Text),
)

response_inputs = Table(
    "response_inputs",
    metadata,
    # Only for `/v1/responses` with an explicit `store: true`; expires with the task.
    Column("task_id", String(40), primary_key=True),
    Column("items", Text, nullable=False),  # canonical history as JSON
    Column("expires_at", TS, nullable=False),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("period", String(7), nullable=False),  # YYYY-MM
    Column("number", String(40), nullable=False, unique=True),
    Column("status", String(12), nullable=False),
    Column("document", JSON, nullable=False),
    Column("total_micros", BigInteger, nullable=False),
    Column("issued_at", TS, nullable=False),
    UniqueConstraint("account_id", "period", name="uq_invoices_account_period"),
)

gateway_secrets = Table(
    "gateway_secrets",
    metadata,
    # Deployment-wide secrets every worker must share (e.g. the reasoning-signature key).
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
    Column("created_at", TS, nullable=False),
)
