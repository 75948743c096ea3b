"""The pipeline's steps that belong to billing, limits and tasks, behind one seam.

`PipelineHooks` wires the real packages; each method is one step of the request path and is
called by `Pipeline` in the order house.md gives. Keeping them here (and not inside billing,
limits or tasks) is what lets those packages stay ignorant of each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from runapi.auth import Principal
from runapi.canonical.codec import Decoded
from runapi.errors import InternalError, InvalidRequest, RunapiError
from runapi.pipeline.context import Generation
from runapi.server.exchange import Answer, Exchange

Runner = Callable[[Generation], Awaitable[None]]
Publisher = Callable[[bytes], None]


class PipelineHooks:
    """The gateway with nothing wired: every call is admitted, nothing is billed or stored."""

    def validate_callback_url(self, url: str) -> None:
        return None

    async def claim_idempotency(self, gen: Generation) -> Any | None:
        return None

    async def release_idempotency(self, gen: Generation) -> None:
        return None

    async def replay(
        self, request: Exchange, gen: Generation, existing: Any, headers: dict[str, str]
    ) -> Answer:
        # Unreachable here: `claim_idempotency` above never reports an earlier task.
        raise InternalError("Idempotent replays need the tasks package.")

    async def admit(self, gen: Generation) -> None:
        """Take what the request needs (limits, a hold). May leave the hold's answer pending
        (`gen.pending_admission`): the pipeline then starts the upstream call and awaits it with
        `confirm_admission` before the task exists."""
        return None

    async def wait_for_limits(self, gen: Generation) -> RunapiError | None:
        """An async task admitted to wait for a concurrency slot: wait for it (the task stays
        `pending`); the refusal when the wait ran out, else None."""
        return None

    async def confirm_admission(self, gen: Generation) -> None:
        return None

    async def give_back(self, gen: Generation) -> None:
        """Admitted, but its task could not be set up (the caller left, the task store failed):
        nothing will run, so release what admission took (limits, hold, Idempotency-Key)."""
        return None

    async def with_history(self, decoded: Decoded, principal: Principal) -> Decoded:
        raise InvalidRequest(
            "previous_response_id needs stored responses, which this gateway does not keep.",
            param="previous_response_id",
        )

    @contextmanager
    def tracking(self, gen: Generation) -> Iterator[None]:
        """Make a sync or stream run reachable by `POST /v1/tasks/{id}/cancel`."""
        yield

    def rate_limit_headers(self, gen: Generation) -> dict[str, str]:
        return {}

    async def task_created(self, gen: Generation) -> None:
        return None

    async def submit_async(
        self, request: Exchange, gen: Generation, headers: dict[str, str], run: Runner
    ) -> Answer:
        raise InvalidRequest(
            "Async mode needs the tasks package, which this gateway runs without.", param="Prefer"
        )

    def event_publisher(self, gen: Generation) -> Publisher | None:
        return None

    async def debit_output(self, gen: Generation, tokens: int) -> None:
        return None

    async def settle(self, gen: Generation, client_gone: bool) -> None:
        gen.billed = False
        gen.cost_micros = 0

    async def void(self, gen: Generation, reason: str) -> None:
        gen.zero_charge_reason = reason

    async def finished(self, gen: Generation) -> None:
        return None
