"""Account, pricing, cost and invoice routes under `/api/v1` (runapi-contract §8.7, §9, §10).

Field names are RunAPI's SDK names (`me`, `balance`, `price_schedules`, `price_quotes`) and
OpenRouter's (`generation`). Money leaves the ledger as integer micro-dollars and is converted
here, with the rounding each field documents.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from runapi.api.common import (
    authenticate,
    json_response,
    rendered_errors,
    request_id,
    services,
)
from runapi.billing import Ledger, PriceSchedule, hold_micros
from runapi.billing.generations import find_generation
from runapi.billing.invoice_html import render_invoice_html
from runapi.billing.invoices import Invoice, get_invoice, list_invoices
from runapi.billing.money import (
    cents_half_up,
    cents_rounded_up,
    cents_truncated,
    micros_to_float_usd,
    usd_per_1m_to_cents,
)
from runapi.catalog import ModelEntry
from runapi.errors import InternalError, InvalidRequest, NotFound

LEDGER_EXTRA = "ledger"  # Services.extras key of the `Ledger`
ACTION = "chat_completion"  # every surface prices the same (§9)


def ledger_of(request: web.Request) -> Ledger:
    svc = services(request)
    found = getattr(svc, "ledger", None) or svc.extras.get(LEDGER_EXTRA)
    if not isinstance(found, Ledger):
        raise InternalError("Billing is not wired into this gateway.")
    return found


def _headers(request: web.Request) -> dict[str, str]:
    return {"x-request-id": request_id(request)}


# ---------------------------------------------------------------- me, balance


class AccountRef(msgspec.Struct, frozen=True):
    id: int
    name: str


class Me(msgspec.Struct, frozen=True):
    id: int
    name: str
    email: str | None
    account: AccountRef


class Balance(msgspec.Struct, frozen=True):
    balance_cents: int
    paid_balance_cents: int
    bonus_balance_cents: int
    spent_cents_today: int
    spent_cents_total: int


@rendered_errors
async def get_me(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    account = await services(request).accounts.get(principal.account_id)
    # runapi keys belong to accounts, not users: the account is both the caller and its account.
    body = Me(account.id, account.name, account.email, AccountRef(account.id, account.name))
    return json_response(body, headers=_headers(request))


@rendered_errors
async def get_balance(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    view = await ledger_of(request).balance(principal.account_id)
    # Truncated toward zero so the balance never shows money that is not there; the two parts
    # add up to the whole. Spend is rounded half-up, like invoices.
    bonus = cents_truncated(view.bonus_micros)
    total = cents_truncated(view.available_micros)
    body = Balance(
        balance_cents=total,
        paid_balance_cents=total - bonus,
        bonus_balance_cents=bonus,
        spent_cents_today=cents_half_up(view.spent_today_micros),
        spent_cents_total=cents_half_up(view.spent_total_micros),
    )
    return json_response(body, headers=_headers(request))


# ---------------------------------------------------------------- price schedules


class UsdPer1M(msgspec.Struct, frozen=True):
    input: str
    output: str
    cache_read: str
    cache_write: str


class InputLengthTier(msgspec.Struct, frozen=True):
    above_input_tokens: int
    usd_per_1m: UsdPer1M


class BillingConfig(msgspec.Struct, frozen=True):
    usd_per_1m: UsdPer1M
    input_length_tiers: list[InputLengthTier]
    effective_from: datetime
    price_schedule_id: int


class PriceScheduleItem(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    action: str
    model: str
    pricing_status: str  # available | pending
    catalog_status: str  # active | maintenance | disabled
    currency: str
    billing_unit: str
    billing_strategy: str
    unit_price_cents: int | None
    input_price_per_1m_cents: int | None
    output_price_per_1m_cents: int | None
    cache_read_price_per_1m_cents: int | None
    cache_write_price_per_1m_cents: int | None
    cache_write_5m_price_per_1m_cents: int | None
    cache_write_1h_price_per_1m_cents: int | None
    billing_config: BillingConfig | None


class PriceSchedules(msgspec.Struct, frozen=True):
    as_of: datetime
    price_schedules: list[PriceScheduleItem]


def service_of(model: ModelEntry) -> str:
    return "local" if model.upstream == "local" else model.family


def _usd_per_1m(input: Any, output: Any, cache_read: Any, cache_write: Any) -> UsdPer1M:
    return UsdPer1M(str(input), str(output), str(cache_read), str(cache_write))


def schedule_item(model: ModelEntry, schedule: PriceSchedule | None) -> PriceScheduleItem:
    if schedule is None:
        cents: list[int | None] = [None, None, None, None]
        config = None
    else:
        p = schedule.prices
        # RunAPI's SDK types these as integers, so $0.375 shows as 38; billing_config is exact.
        cents = [usd_per_1m_to_cents(v) for v in (p.input, p.output, p.cache_read, p.cache_write)]
        config = BillingConfig(
            usd_per_1m=_usd_per_1m(p.input, p.output, p.cache_read, p.cache_write),
            input_length_tiers=[
                InputLengthTier(
                    t.above_input_tokens, _usd_per_1m(t.input, t.output, t.cache_read, t.cache_write)
                )
                for t in schedule.input_tiers
            ],
            effective_from=schedule.effective_from,
            price_schedule_id=schedule.id,
        )
    return PriceScheduleItem(
        service=service_of(model),
        action=ACTION,
        model=model.id,
        pricing_status="pending" if schedule is None else "available",
        catalog_status=model.status,
        currency="USD",
        billing_unit="token",
        billing_strategy="per_token",
        unit_price_cents=None,
        input_price_per_1m_cents=cents[0],
        output_price_per_1m_cents=cents[1],
        cache_read_price_per_1m_cents=cents[2],
        cache_write_price_per_1m_cents=cents[3],
        cache_write_5m_price_per_1m_cents=None,
        cache_write_1h_price_per_1m_cents=None,
        billing_config=config,
    )


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


@rendered_errors
async def get_price_schedules(request: web.Request) -> web.StreamResponse:
    """Public prices (no key needed): one row per model, the schedule in effect now."""
    svc = services(request)
    prices = ledger_of(request).prices
    now = datetime.now(UTC)
    want_service = request.query.get("service") or None
    want_action = request.query.get("action") or None
    want_model = request.query.get("model") or None
    wanted = svc.catalog.get(want_model) if want_model else None
    items = []
    for model in svc.catalog:
        if want_model and (wanted is None or model.id != wanted.id):
            continue
        if want_service and service_of(model) != want_service:
            continue
        if want_action and want_action != ACTION:
            continue
        items.append(schedule_item(model, prices.schedule_for(model.id, now)))
    starts = [i.billing_config.effective_from for i in items if i.billing_config is not None]
    body = msgspec.json.encode(PriceSchedules(as_of=max(starts, default=now), price_schedules=items))
    # The body changes only when a schedule takes effect, so its hash is a stable validator.
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {**_headers(request), "ETag": etag, "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


# ---------------------------------------------------------------- price quotes


class PriceQuoteRequest(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    service: str | None = None
    action: str | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)


class PriceQuote(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    action: str
    model: str
    pricing_status: str
    currency: str
    reservation_amount_cents: int
    estimate_basis: str
    as_of: datetime


class PriceQuoteResponse(msgspec.Struct, frozen=True):
    price_quote: PriceQuote


_INPUT_KEYS = ("messages", "input", "system", "instructions", "tools", "prompt")
_OUTPUT_CAP_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_IMAGE_TYPES = frozenset({"image_url", "image", "input_image"})


def estimate_params_tokens(params: dict[str, Any]) -> int:
    """An upper-bound estimate from the intended body of any surface, without decoding it: about
    three characters per token plus per-message and per-image overheads, the same bound admission
    uses (`canonical.estimate`). Quoting never stores `params`."""
    chars = 0
    tokens = 3
    stack: list[Any] = [params[k] for k in _INPUT_KEYS if k in params]
    for _ in range(100_000):  # bounded walk over the JSON
        if not stack:
            break
        value = stack.pop()
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, list):
            tokens += 4 * sum(1 for v in value if isinstance(v, dict) and "role" in v)
            stack.extend(value)
        elif isinstance(value, dict):
            if value.get("type") in _IMAGE_TYPES:
                tokens += 1600
                continue
            stack.extend(value.values())
    return tokens + (chars + 2) // 3


def _output_cap(params: dict[str, Any]) -> int | None:
    for key in _OUTPUT_CAP_KEYS:
        value = params.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidRequest(f"`params.{key}` must be a non-negative integer.", param=f"params.{key}")
            return value
    return None


@rendered_errors
async def post_price_quote(request: web.Request) -> web.StreamResponse:
    await authenticate(request)
    try:
        quote_request = msgspec.json.decode(await request.read(), type=PriceQuoteRequest)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"Invalid price quote request: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest("The body must be a JSON object.") from exc
    svc = services(request)
    model = svc.catalog.resolve(quote_request.model)
    now = datetime.now(UTC)
    schedule = ledger_of(request).prices.schedule_for(model.id, now)
    if schedule is None:
        raise NotFound(f"No price schedule for model {model.id}.", param="model")
    est_input = estimate_params_tokens(quote_request.params)
    max_output = _output_cap(quote_request.params)
    hold = hold_micros(model, est_input, max_output, schedule.prices_for(est_input))
    quote = PriceQuote(
        service=service_of(model),
        action=ACTION,
        model=model.id,
        pricing_status="available",
        currency="USD",
        reservation_amount_cents=cents_rounded_up(hold),  # never understates the hold
        estimate_basis="input_estimate+"
        + ("max_output_tokens" if max_output is not None else "hold_output_cap"),
        as_of=schedule.effective_from,
    )
    return json_response(PriceQuoteResponse(quote), headers=_headers(request))


# ---------------------------------------------------------------- generation stats


class GenerationData(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    upstream_id: str | None
    model: str
    provider_name: str | None
    total_cost: float
    cache_discount: float | None
    upstream_inference_cost: float | None
    tokens_prompt: int | None
    tokens_completion: int | None
    native_tokens_prompt: int | None
    native_tokens_completion: int | None
    native_tokens_cached: int | None
    native_tokens_reasoning: int | None
    latency: int | None  # ms, creation to completion
    generation_time: int | None  # ms, upstream start to completion
    finish_reason: str | None
    native_finish_reason: str | None
    streamed: bool
    cancelled: bool
    created_at: datetime
    # runapi's additions
    surface_id: str
    status: str
    usage_source: str | None
    cost_micros: int
    billed: bool
    free_call: bool
    zero_charge_reason: str | None


class GenerationResponse(msgspec.Struct, frozen=True):
    data: GenerationData


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000)


@rendered_errors
async def get_generation(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    ident = request.query.get("id")
    if not ident:
        raise InvalidRequest("Pass the generation id: `?id=`.", param="id")
    svc = services(request)
    tasks = svc.extras.get("tasks")
    if tasks is not None:
        # Task rows are written behind the response; make this process's pending ones visible, so
        # the record exists as soon as the terminal event was sent (§8.7).
        await tasks.store.flush()
    record = await find_generation(svc.db, principal.account_id, ident)
    if not record.finished:
        # OpenRouter clients retry a 404 until the record exists; ours exists at the terminal event.
        raise NotFound(f"Generation {ident} is still running.")
    ledger = ledger_of(request)
    schedule = ledger.prices.by_id(record.price_schedule_id) if record.price_schedule_id else None
    cached = record.cached_input_tokens or 0
    discount = None
    if schedule is not None:
        prices = schedule.prices_for(record.input_tokens or 0)
        discount = micros_to_float_usd(round(cached * (prices.input - prices.cache_read)))
    model = svc.catalog.get(record.model)
    cost = record.cost_micros or 0
    data = GenerationData(
        id=record.task_id,
        upstream_id=record.upstream_id,
        model=record.model,
        provider_name=model.upstream if model else None,
        total_cost=micros_to_float_usd(cost),
        cache_discount=discount,
        upstream_inference_cost=None,
        tokens_prompt=record.input_tokens,
        tokens_completion=record.output_tokens,
        native_tokens_prompt=record.input_tokens,
        native_tokens_completion=record.output_tokens,
        native_tokens_cached=record.cached_input_tokens,
        native_tokens_reasoning=record.reasoning_tokens,
        latency=_ms(record.created_at, record.completed_at),
        generation_time=_ms(record.started_at, record.completed_at),
        finish_reason=record.finish_reason,
        native_finish_reason=record.finish_reason,
        streamed=record.streamed,
        cancelled=record.status == "canceled",
        created_at=record.created_at,
        surface_id=record.surface_id,
        status=record.status,
        usage_source=record.usage_source,
        cost_micros=cost,
        billed=bool(record.billed),
        free_call=record.free_call,
        zero_charge_reason=record.zero_charge_reason,
    )
    return json_response(GenerationResponse(data), headers=_headers(request))


# ---------------------------------------------------------------- invoices


class InvoiceList(msgspec.Struct, frozen=True):
    data: list[Invoice]
    has_more: bool
    last_id: str | None
    object: str = "list"


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit") or "20"
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequest("`limit` must be an integer from 1 to 100.", param="limit")
    return int(raw)


@rendered_errors
async def get_invoices(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    page, more = await list_invoices(
        services(request).db, principal.account_id, limit=_limit(request), after=request.query.get("after")
    )
    body = InvoiceList(data=page, has_more=more, last_id=page[-1].id if page else None)
    return json_response(body, headers=_headers(request))


def _wants_html(request: web.Request) -> bool:
    if request.query.get("format") == "html":
        return True
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept


@rendered_errors
async def get_one_invoice(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    svc = services(request)
    invoice = await get_invoice(svc.db, principal.account_id, request.match_info["invoice_id"])
    if _wants_html(request):
        account = await svc.accounts.get(principal.account_id)
        html = render_invoice_html(invoice, account_name=account.name)
        return web.Response(text=html, content_type="text/html", headers=_headers(request))
    return json_response(invoice, headers=_headers(request))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/me", get_me),
        web.get("/api/v1/me/balance", get_balance),
        web.get("/api/v1/price_schedules", get_price_schedules),
        web.post("/api/v1/price_quotes", post_price_quote),
        web.get("/api/v1/generation", get_generation),
        web.get("/api/v1/invoices", get_invoices),
        web.get("/api/v1/invoices/{invoice_id}", get_one_invoice),
    ]


__all__ = ["LEDGER_EXTRA", "ledger_of", "routes"]
