"""The `runapi` command: serve, simulate, accounts, keys, credit, refund, invoices, skills."""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation

import msgspec
import typer

from runapi.cli._run import ConfigOption, console, out, print_json, settings_from, with_db
from runapi.cli.accounts import accounts_app, credit_account, keys_app
from runapi.cli.invoices import invoices_app
from runapi.cli.skills import skills_app

app = typer.Typer(help="runapi: a self-hostable LLM API gateway.", no_args_is_help=True, add_completion=False)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(invoices_app, name="invoices")
app.add_typer(skills_app, name="skills")


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host"),
    port: int | None = typer.Option(None, "--port"),
    workers: int | None = typer.Option(None, "--workers", help="Worker processes sharing the port."),
    config: str | None = ConfigOption,
) -> None:
    """Start the gateway. On first start with an empty database, prints a ready-to-use key."""
    from runapi.cli.serve import ensure_default_account
    from runapi.cli.serve import serve as run_server
    from runapi.settings import load_settings

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if workers is not None:
        overrides["workers"] = workers
    settings = load_settings(config, overrides=overrides)
    secret = asyncio.run(ensure_default_account(settings))
    if secret:
        out.print("[bold]First start:[/bold] created account 'default'.")
        out.print(f"API key (shown once): [bold green]{secret}[/bold green]")
        out.print(
            f"Try:  curl {settings.base_url}/v1/chat/completions -H 'Authorization: Bearer {secret}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"model":"SmolLM2-135M-Instruct","messages":[{"role":"user","content":"Hi"}]}\'',
            soft_wrap=True,
        )
    if "minimax" not in settings.upstreams:
        console.print(
            "[yellow]No MiniMax upstream configured[/yellow]: MiniMax models answer 503 until you set "
            "MINIMAX_API_KEY (or run `runapi simulate` and point MINIMAX_BASE_URL at it). "
            "The embedded model SmolLM2-135M-Instruct works offline."
        )
    run_server(settings)


@app.command()
def simulate(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(9100, "--port"),
    ttft_ms: float = typer.Option(0.0, "--ttft-ms", help="Time to first token."),
    tps: float = typer.Option(0.0, "--tps", help="Tokens per second (0: as fast as possible)."),
    error_rate: float = typer.Option(0.0, "--error-rate", help="Fraction of requests that fail."),
    api_key: str | None = typer.Option(None, "--api-key", help="Require this Bearer key."),
    chunk_tokens: int = typer.Option(1, "--chunk-tokens"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Run the MiniMax simulator: MiniMax's wire behaviour, latency and failures, offline."""
    from runapi.simulator import SimConfig, run

    config = SimConfig(
        ttft_ms=ttft_ms, tps=tps, error_rate=error_rate, api_key=api_key, chunk_tokens=chunk_tokens, seed=seed
    )
    run(host, port, config)


@app.command()
def credit(
    account: int,
    usd: str,
    payment_id: str | None = typer.Option(None, "--payment-id"),
    config: str | None = ConfigOption,
) -> None:
    """Top up an account with USD credit (a `topup` ledger entry)."""
    try:
        amount = Decimal(usd)
    except InvalidOperation:
        console.print(f"[red]not an amount:[/red] {usd}")
        raise typer.Exit(2) from None
    settings = settings_from(config)
    with_db(settings, lambda db: credit_account(db, account, amount, payment_id))
    out.print(f"credited ${amount} to account {account}")


@app.command()
def refund(
    task_id: str = typer.Argument(..., help="task_<ulid>, or the surface id (chatcmpl-…, resp_…, msg_…)."),
    usd: str | None = typer.Option(None, "--usd", help="Amount; all that is left of the charge without it."),
    refund_id: str | None = typer.Option(None, "--refund-id", help="Makes a retry a no-op."),
    reason: str | None = typer.Option(None, "--reason"),
    json_output: bool = typer.Option(False, "--json"),
    config: str | None = ConfigOption,
) -> None:
    """Refund all or part of a task's charge (a `refund` ledger entry; never beyond the charge)."""
    from runapi.billing import refund_task
    from runapi.billing.money import micros_to_usd, usd_to_micros
    from runapi.tasks.records import task_id_for

    amount: int | None = None
    if usd is not None:
        try:
            amount = usd_to_micros(usd)
        except (ValueError, ArithmeticError):
            console.print(f"[red]not an amount:[/red] {usd}")
            raise typer.Exit(2) from None
    settings = settings_from(config)
    done = with_db(
        settings,
        lambda db: refund_task(
            db, task_id_for(task_id), amount_micros=amount, refund_id=refund_id, reason=reason
        ),
    )
    if json_output:
        print_json(msgspec.to_builtins(done))
        return
    verb = "refunded" if done.applied else "already refunded"
    out.print(
        f"{verb} ${micros_to_usd(done.amount_micros)} of task {done.task_id} to account {done.account_id} "
        f"({done.idempotency_key}); balance ${micros_to_usd(done.balance_micros)}"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
