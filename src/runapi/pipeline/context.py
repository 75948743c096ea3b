"""Per-request state carried through the pipeline's steps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runapi.auth import Principal
from runapi.canonical import Completion, Message, Usage
from runapi.canonical.codec import Decoded, ResponseMeta, Surface
from runapi.catalog import ModelEntry
from runapi.errors import RunapiError
from runapi.providers.base import Provider


@dataclass(slots=True)
class Generation:
    """One admitted generation: everything the run and the settlement need."""

    surface: Surface
    decoded: Decoded
    principal: Principal
    model: ModelEntry
    provider: Provider
    meta: ResponseMeta
    ulid: str
    est_input_tokens: int
    mode: str  # sync | stream | async
    idempotency_key: str | None = None
    client_request_id: str | None = None
    fingerprint: str | None = None
    admission: Any = None  # billing Admission (None when billing is off)
    # A hold queued but not yet answered (`Ledger.admit_ahead`): its future, until confirmed.
    pending_admission: Any = None
    # The provider call (`generate.UpstreamCall`) when it was started before the task existed.
    upstream: Any = None
    ticket: Any = None  # limiter ticket (None when limits are off)
    refusal_state: Any = None  # limiter state of a 429, for its headers
    # An async task over its key's concurrency cap: the limits it waits to be admitted under and
    # its place in the queue (`gateway_hooks.SlotWait`), and the refusal that ended the wait, if
    # one did.
    slot_wait: Any = None
    refused_while_pending: RunapiError | None = None
    record: Any = None  # the task record (None when tasks are not wired)
    prefer_wait: float | None = None  # `Prefer: wait=N`: answer like sync for up to N seconds
    history: tuple[Message, ...] = ()  # earlier turns from `previous_response_id`
    started_monotonic: float = field(default_factory=time.monotonic)
    # Time inside the provider (its request built and sent → last event), for x-runapi-overhead-ms.
    upstream_seconds: float = 0.0
    first_byte_monotonic: float | None = None
    completion: Completion | None = None
    usage: Usage | None = None
    cost_micros: int = 0
    billed: bool = False
    free_call: bool = False
    zero_charge_reason: str | None = None
    price_schedule_id: int | None = None
    status: str = "pending"
    failure: RunapiError | None = None
    error: str | None = None
    error_code: str | None = None
    response_status: int = 200
    response_body: bytes | None = None
    settled: bool = False
    # Stream and async modes: the surface's stream encoder, and the terminal frame it rendered at
    # settlement (so the task's event log holds it before the log is closed).
    stream_encoder: Any = None
    tail: bytes | None = None
    # The stream's start frame, and whether it has left (to the client, or to the log of an async
    # task); until then a failure can still be answered with its own HTTP status.
    stream_start: bytes = b""
    stream_started: bool = False

    @property
    def task_id(self) -> str:
        return "task_" + self.ulid
