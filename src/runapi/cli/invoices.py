"""`runapi invoices run`: the monthly invoice job, with progress on screen."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.progress import Progress
from rich.table import Table

from runapi.cli._run import ConfigOption, out, print_json, settings_from, with_db
from runapi.store.database import Database

invoices_app = typer.Typer(help="Monthly invoices.", no_args_is_help=True)


def _last_month() -> str:
    now = datetime.now(UTC)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@invoices_app.command("run")
def invoices_run(
    month: str = typer.Option(None, "--month", help="YYYY-MM (default: last month)."),
    as_json: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOption,
) -> None:
    """Create (or refresh, idempotently) every account's invoice for a month."""
    from runapi.billing.invoices import generate_invoices

    period = month or _last_month()
    settings = settings_from(config)

    async def work(db: Database) -> list[object]:
        with Progress(transient=True) as bar:
            job = bar.add_task(f"invoicing {period}", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(job, completed=done, total=total)

            return list(await generate_invoices(db, period, advance))

    invoices = with_db(settings, work)
    if as_json:
        import msgspec

        print_json(msgspec.to_builtins(invoices))
        return
    table = Table("number", "account", "lines", "total (USD)")
    for inv in invoices:
        table.add_row(inv.number, str(inv.account_id), str(len(inv.line_items)), inv.total)  # type: ignore[attr-defined]
    out.print(table)
