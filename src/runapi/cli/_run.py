"""Small helpers shared by CLI commands: settings, a database session, JSON output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from runapi.errors import RunapiError
from runapi.settings import Settings, load_settings
from runapi.store.database import Database

T = TypeVar("T")
console = Console(stderr=True)
out = Console()

ConfigOption = typer.Option(None, "--config", "-c", help="Path to runapi.toml (or set RUNAPI_CONFIG).")


def settings_from(config: str | None) -> Settings:
    return load_settings(config)


def with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database(settings.database_url)
        try:
            await db.migrate()
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except RunapiError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


def print_json(obj: Any) -> None:
    print(json.dumps(obj, default=str))
