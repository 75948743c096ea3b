"""What the pipeline needs from billing, limits and tasks, stated as protocols.

The pipeline is the only place that orders the steps (house.md); billing, limits and tasks never
call each other. These protocols keep that seam explicit and let each package evolve behind it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from runapi.canonical import Usage
from runapi.catalog import ModelEntry


class AdmissionLike(Protocol):
    task_id: str
    account_id: int
    hold_micros: int
    free_call: bool
    output_cap: int | None


class ChargeLike(Protocol):
    cost_micros: int
    free_call: bool
    billed: bool
    zero_charge_reason: str | None
    price_schedule_id: int | None


class Ledger(Protocol):
    async def admit(
        self,
        *,
        account_id: int,
        account_created_at: datetime,
        task_id: str,
        model: ModelEntry,
        est_input_tokens: int,
        max_output_tokens: int | None,
    ) -> AdmissionLike: ...

    async def settle(self, admission: AdmissionLike, usage: Usage, model: ModelEntry) -> ChargeLike: ...

    async def void(self, admission: AdmissionLike, reason: str) -> ChargeLike: ...


class LimitStateLike(Protocol):
    requests_limit: int
    requests_remaining: int
    requests_reset_s: float
    input_tokens_limit: int
    input_tokens_remaining: int
    input_tokens_reset_s: float
    output_tokens_limit: int
    output_tokens_remaining: int
    output_tokens_reset_s: float
