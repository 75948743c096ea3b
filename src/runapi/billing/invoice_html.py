"""A readable, printable HTML rendering of an invoice (the JSON document stays the record)."""

from __future__ import annotations

from decimal import Decimal
from html import escape

from .invoices import Invoice
from .money import MICROS_PER_USD

_CLASS_LABEL = {
    "input": "Input",
    "cached_input": "Cached input",
    "cache_write": "Cache write",
    "output": "Output (incl. reasoning)",
}

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 860px; margin: 2rem auto; }
h1 { font-size: 1.4rem; margin-bottom: 0; } .muted { color: #666; }
table { border-collapse: collapse; width: 100%; margin-top: 1.5rem; }
th, td { padding: .35rem .5rem; border-bottom: 1px solid #ddd; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tfoot td { border: 0; } tfoot tr.total td { font-weight: 600; border-top: 2px solid #222; }
"""


def _usd(micros: int) -> str:
    """µ$ shown to six decimals: line amounts are exact, only the total is rounded to cents."""
    return f"${Decimal(micros) / MICROS_PER_USD:,.6f}"


def render_invoice_html(invoice: Invoice, *, account_name: str | None = None) -> str:
    rows = "\n".join(
        "<tr>"
        f"<td>{escape(item.model)}</td><td>{_CLASS_LABEL[item.token_class]}</td>"
        f'<td class="num">{item.tokens:,}</td><td class="num">${escape(item.unit_price_per_1m)}</td>'
        f'<td class="num">{_usd(item.amount_micros)}</td>'
        "</tr>"
        for item in invoice.line_items
    )
    summary = [
        ("Per-request rounding", invoice.rounding_micros),
        ("Subtotal (charges)", invoice.subtotal_micros),
        ("Free first calls", invoice.free_grants_micros),
        ("Refunds", invoice.refunds_micros),
        ("Adjustments", invoice.adjustments_micros),
    ]
    foot = "\n".join(
        f'<tr><td colspan="4" class="num">{label}</td><td class="num">{_usd(amount)}</td></tr>'
        for label, amount in summary
        if amount or label.startswith("Subtotal")
    )
    due = f"Due {invoice.due_at:%Y-%m-%d}" if invoice.due_at else "Prepaid: nothing is due"
    who = f"{escape(account_name)} · " if account_name else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Invoice {escape(invoice.number)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Invoice {escape(invoice.number)}</h1>
<p class="muted">{who}Account {invoice.account_id} · Period {escape(invoice.period)}
({invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}, UTC) · Status {escape(invoice.status)}<br>
Issued {invoice.issued_at:%Y-%m-%d %H:%M} UTC · {due}</p>
<table>
<thead><tr><th>Model</th><th>Tokens</th><th class="num">Count</th><th class="num">USD / 1M</th>
<th class="num">Amount</th></tr></thead>
<tbody>
{rows or '<tr><td colspan="5" class="muted">No usage this period.</td></tr>'}
</tbody>
<tfoot>
{foot}
<tr class="total"><td colspan="4" class="num">Total ({escape(invoice.currency)})</td>
<td class="num">${escape(invoice.total)}</td></tr>
</tfoot>
</table>
</body></html>
"""
