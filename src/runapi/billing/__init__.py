"""Billing: prices → micro-dollars, the two-phase ledger (hold → post or void), free first calls,
balances and monthly invoices (runapi-contract §7 to §10)."""

from runapi.billing.credit import TopUp, credit_usd, record_topup
from runapi.billing.ledger import BalanceView, Ledger
from runapi.billing.pricing import PriceBook, PriceSchedule, cost_micros, hold_micros, seed_price_schedules
from runapi.billing.records import Admission, AdmissionTerms, Charge
from runapi.billing.refunds import Refund, refund_task

__all__ = [
    "Admission",
    "AdmissionTerms",
    "BalanceView",
    "Charge",
    "Ledger",
    "PriceBook",
    "PriceSchedule",
    "Refund",
    "TopUp",
    "cost_micros",
    "credit_usd",
    "hold_micros",
    "record_topup",
    "refund_task",
    "seed_price_schedules",
]
