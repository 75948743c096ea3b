"""Operator routes under `/admin/v1`, guarded by `RUNAPI_ADMIN_KEY`: credit and inspect accounts,
refund tasks.

A top-up is idempotent per `payment_id` (pass the payment provider's id); it may promote the
account's tier at once, so the route asks the tier rules right after crediting. A refund is
idempotent per `refund_id` (`billing/refunds.py`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec
from aiohttp import web

from runapi.api.account import ledger_of
from runapi.api.common import json_response, rendered_errors, request_id, require_admin, services
from runapi.api.limits import tier_table
from runapi.billing import BalanceView, record_topup, refund_task
from runapi.billing.money import micros_to_usd, usd_to_micros
from runapi.errors import InvalidRequest
from runapi.ids import new_ulid
from runapi.limits.promotion import promote_if_due
from runapi.tasks.records import task_id_for


class CreditRequest(msgspec.Struct, frozen=True, kw_only=True):
    usd: Decimal  # "10.00" (a string keeps it exact; a JSON number is accepted)
    payment_id: str | None = None  # without one, every call credits anew
    bonus: bool = False  # promotional credit: spent first, never counts toward tiers


class CreditResult(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    applied: bool  # false: this payment_id was already credited
    idempotency_key: str
    amount_micros: int
    balance_micros: int
    balance_usd: str
    paid_total_micros: int
    first_payment_at: datetime | None
    tier: int


class RefundRequest(msgspec.Struct, frozen=True, kw_only=True):
    task_id: str  # task_<ulid>, or the surface id (chatcmpl-…, resp_…, msg_…)
    usd: Decimal | None = None  # without it: all that is left of the task's charge
    refund_id: str | None = None  # without one, every call refunds anew
    reason: str | None = None


class RefundResult(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    task_id: str
    applied: bool  # false: this refund_id was already recorded
    idempotency_key: str
    amount_micros: int
    amount_usd: str
    charged_micros: int
    refunded_micros: int  # all refunds of the task so far
    balance_micros: int
    balance_usd: str


class AdminAccount(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    email: str | None
    created_at: datetime
    tier: int
    available_usd: str
    balance: BalanceView


def _account_id(request: web.Request) -> int:
    raw = request.match_info["account_id"]
    if not raw.isdigit():
        raise InvalidRequest("Account ids are numbers.", param="account_id")
    return int(raw)


@rendered_errors
async def credit_account(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    account_id = _account_id(request)
    try:
        body = msgspec.json.decode(await request.read(), type=CreditRequest)
        amount = usd_to_micros(body.usd)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError, ArithmeticError) as exc:
        raise InvalidRequest(
            'Send {"usd": "10.00", "payment_id": "..."}: a positive USD amount with at most 6 decimals.',
            param="usd",
        ) from exc
    svc = services(request)
    payment_id = body.payment_id or "admin_" + new_ulid()
    topup = await record_topup(svc.db, account_id, amount, payment_id, bonus=body.bonus)
    tier = await promote_if_due(svc.db, account_id, tier_table(svc))
    if tier is not None:
        svc.keys.forget_account(account_id)  # cached principals carry the old tier
    account = await svc.accounts.get(account_id)
    result = CreditResult(
        account_id=account_id,
        applied=topup.applied,
        idempotency_key=topup.idempotency_key,
        amount_micros=amount,
        balance_micros=topup.balance_micros,
        balance_usd=micros_to_usd(topup.balance_micros),
        paid_total_micros=topup.paid_total_micros,
        first_payment_at=topup.first_payment_at,
        tier=account.tier,
    )
    return json_response(result, headers={"x-request-id": request_id(request)})


@rendered_errors
async def refund(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    try:
        body = msgspec.json.decode(await request.read(), type=RefundRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidRequest(
            'Send {"task_id": "task_...", "usd": "0.50", "refund_id": "...", "reason": "..."}; '
            f"usd is optional (all that is left). {exc}",
            param="task_id",
        ) from exc
    amount: int | None = None
    if body.usd is not None:
        try:
            amount = usd_to_micros(body.usd)
        except (ValueError, ArithmeticError) as exc:
            raise InvalidRequest(
                "usd must be a positive amount with at most 6 decimals.", param="usd"
            ) from exc
    svc = services(request)
    done = await refund_task(
        svc.db, task_id_for(body.task_id), amount_micros=amount, refund_id=body.refund_id, reason=body.reason
    )
    result = RefundResult(
        account_id=done.account_id,
        task_id=done.task_id,
        applied=done.applied,
        idempotency_key=done.idempotency_key,
        amount_micros=done.amount_micros,
        amount_usd=micros_to_usd(done.amount_micros),
        charged_micros=done.charged_micros,
        refunded_micros=done.refunded_micros,
        balance_micros=done.balance_micros,
        balance_usd=micros_to_usd(done.balance_micros),
    )
    return json_response(result, headers={"x-request-id": request_id(request)})


@rendered_errors
async def get_account(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    account_id = _account_id(request)
    svc = services(request)
    account = await svc.accounts.get(account_id)
    view = await ledger_of(request).balance(account_id)
    body = AdminAccount(
        id=account.id,
        name=account.name,
        email=account.email,
        created_at=account.created_at,
        tier=account.tier,
        available_usd=micros_to_usd(view.available_micros),
        balance=view,
    )
    return json_response(body, headers={"x-request-id": request_id(request)})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/admin/v1/accounts/{account_id}/credit", credit_account),
        web.get("/admin/v1/accounts/{account_id}", get_account),
        web.post("/admin/v1/refunds", refund),
    ]


__all__ = ["routes"]
