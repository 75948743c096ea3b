"""`runapi accounts …` and `runapi keys …`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import typer
from rich.table import Table

from runapi.auth import AccountRepository, KeyRepository
from runapi.cli._run import ConfigOption, console, out, print_json, settings_from, with_db
from runapi.store.database import Database

accounts_app = typer.Typer(help="Create and inspect accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


async def credit_account(db: Database, account_id: int, usd: Decimal, payment_id: str | None = None) -> None:
    """A top-up, then the tier promotion it may earn (paid spend is what tiers count)."""
    from runapi.billing import credit_usd
    from runapi.limits.promotion import promote_if_due
    from runapi.limits.tiers import TierTable
    from runapi.settings import load_settings

    await credit_usd(db, account_id, usd, payment_id)
    await promote_if_due(db, account_id, TierTable.from_settings(load_settings().limits))


async def pin_tier(db: Database, account_id: int, tier: int | None) -> None:
    from sqlalchemy import update

    from runapi.store.schema import accounts

    values = {"tier": tier, "tier_pinned": True} if tier is not None else {"tier_pinned": False}
    async with db.begin() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))


@accounts_app.command("set-tier")
def accounts_set_tier(
    account: int,
    tier: int | None = typer.Argument(None, help="Tier to pin; omit with --unpin to return to automatic."),
    unpin: bool = typer.Option(False, "--unpin", help="Let promotion manage the tier again."),
    config: str | None = ConfigOption,
) -> None:
    """Pin an account's usage tier (operator override; automatic promotion never demotes)."""
    if tier is None and not unpin:
        console.print("[red]give a tier or --unpin[/red]")
        raise typer.Exit(2)
    settings = settings_from(config)
    with_db(settings, lambda db: pin_tier(db, account, None if unpin else tier))
    out.print(f"account {account}: " + ("tier unpinned" if unpin else f"tier pinned to {tier}"))


@accounts_app.command("create")
def accounts_create(
    name: str,
    credit: str = typer.Option("0", "--credit", help="Starting credit in USD, recorded as a top-up."),
    email: str | None = typer.Option(None, "--email"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    config: str | None = ConfigOption,
) -> None:
    """Create an account and its first API key (the key is shown once)."""
    settings = settings_from(config)

    async def work(db: Database) -> tuple[int, str]:
        account = await AccountRepository(db).create(name, email)
        key = await KeyRepository(db).create(account.id, name="default")
        if Decimal(credit) > 0:
            await credit_account(db, account.id, Decimal(credit), f"cli-initial-{account.id}")
        return account.id, key.secret

    account_id, secret = with_db(settings, work)
    if as_json:
        print_json({"account_id": account_id, "api_key": secret})
    else:
        out.print(f"account [bold]{account_id}[/bold] created")
        out.print(f"api key (shown once): [bold green]{secret}[/bold green]")


@keys_app.command("create")
def keys_create(
    account: int = typer.Option(..., "--account", help="Account id."),
    name: str | None = typer.Option(None, "--name"),
    value: str | None = typer.Option(None, "--value", help="Import an existing secret (8+ printable chars)."),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOption,
) -> None:
    """Create (or import) an API key for an account."""
    settings = settings_from(config)
    created = with_db(settings, lambda db: KeyRepository(db).create(account, name=name, secret=value))
    if as_json:
        print_json({"key_id": created.id, "account_id": created.account_id, "api_key": created.secret})
    else:
        out.print(f"key {created.id}: [bold green]{created.secret}[/bold green] (shown once)")


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: str | None = ConfigOption) -> None:
    """Revoke a key by id (`key_…`). Gateways stop accepting it within `key_cache_seconds`."""
    settings = settings_from(config)
    with_db(settings, lambda db: KeyRepository(db).revoke(key_id))
    console.print(f"revoked {key_id}")


@keys_app.command("list")
def keys_list(
    account: int | None = typer.Option(None, "--account"),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOption,
) -> None:
    """List keys (hints only; secrets are never stored)."""
    settings = settings_from(config)
    keys = with_db(settings, lambda db: KeyRepository(db).list(account))
    if as_json:
        print_json(
            [
                {
                    "id": k.id,
                    "account_id": k.account_id,
                    "name": k.name,
                    "hint": k.hint,
                    "revoked": k.revoked_at is not None,
                }
                for k in keys
            ]
        )
        return
    table = Table("id", "account", "name", "hint", "created", "revoked")
    for k in keys:
        table.add_row(
            k.id, str(k.account_id), k.name or "", k.hint, str(k.created_at), str(k.revoked_at or "")
        )
    out.print(table)


async def set_key_limits(
    db: Database, key_id: str, model_class: str, values: dict[str, int | None]
) -> dict[str, Any]:
    """Merge one class's per-key overrides into the key's stored ones; returns what is stored now.

    A None value removes that field's override; a class left with no field is removed."""
    from sqlalchemy import select, update

    from runapi.errors import InvalidRequest, NotFound
    from runapi.limits.tiers import parse_limit_overrides
    from runapi.store.schema import api_keys

    async with db.begin() as conn:
        row = (await conn.execute(select(api_keys.c.limit_overrides).where(api_keys.c.id == key_id))).first()
        if row is None:
            raise NotFound(f"No key {key_id}.")
        stored: dict[str, Any] = dict(row.limit_overrides or {})
        merged = {**stored.get(model_class, {}), **values}
        scope = {name: value for name, value in merged.items() if value is not None}
        if scope:
            stored[model_class] = scope
        else:
            stored.pop(model_class, None)
        try:
            parse_limit_overrides(stored)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        await conn.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(limit_overrides=stored or None)
        )
    return stored


@keys_app.command("set-limits")
def keys_set_limits(
    key_id: str,
    model_class: str = typer.Option(
        "*", "--model-class", help="standard | highspeed | m3 | local, or * for every class."
    ),
    rpm: int | None = typer.Option(None, "--rpm", help="Requests per minute."),
    itpm: int | None = typer.Option(None, "--itpm", help="Input tokens per minute."),
    otpm: int | None = typer.Option(None, "--otpm", help="Output tokens per minute."),
    concurrent: int | None = typer.Option(None, "--concurrent", help="Requests in flight."),
    clear: bool = typer.Option(False, "--clear", help="Remove this class's overrides."),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOption,
) -> None:
    """Lower one key's limits below its tier (overrides never raise them). Gateways pick the change
    up within `key_cache_seconds`."""
    given = {"rpm": rpm, "itpm": itpm, "otpm": otpm, "concurrent": concurrent}
    if clear:
        values: dict[str, int | None] = dict.fromkeys(given)
    else:
        values = {name: value for name, value in given.items() if value is not None}
        if not values:
            console.print("[red]give at least one of --rpm, --itpm, --otpm, --concurrent (or --clear)[/red]")
            raise typer.Exit(2)
    settings = settings_from(config)
    stored = with_db(settings, lambda db: set_key_limits(db, key_id, model_class, values))
    if as_json:
        print_json({"key_id": key_id, "limit_overrides": stored})
    else:
        out.print(f"key {key_id}: limit overrides {stored or 'none'}")
