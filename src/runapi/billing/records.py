"""What admission reserved for a task, and what its settlement recorded: the pipeline's two handles."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

import msgspec

from runapi.catalog import ModelEntry


class AdmissionTerms(TypedDict):
    """What admission needs to know of a request: the keywords of `Ledger.admit` and
    `Ledger.admit_ahead`."""

    account_id: int
    account_created_at: datetime
    task_id: str
    model: ModelEntry
    est_input_tokens: int
    max_output_tokens: int | None


class Admission(msgspec.Struct, frozen=True, kw_only=True):
    """What admission reserved for one task; the pipeline hands it back to `settle` or `void`."""

    task_id: str
    account_id: int
    model: str
    hold_micros: int
    free_call: bool
    output_cap: int | None  # the cap to send upstream (a free call is capped)
    created_at: datetime  # prices are those in effect at this instant
    price_schedule_id: int | None = None
    # True when a hold or a grant reservation waits in the database to be posted or voided; False for
    # models that cost nothing, which never touch the ledger.
    reserved: bool = False


class Charge(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome the task records: `cost`, `billed`, `free_call`, `zero_charge_reason` (§3.5)."""

    cost_micros: int
    free_call: bool
    price_schedule_id: int | None
    billed: bool
    zero_charge_reason: str | None = None  # a ZeroChargeReason
