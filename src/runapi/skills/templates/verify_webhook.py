"""Verify a runapi webhook delivery (Standard Webhooks v1). Standard library only.

Usage in a receiver, before parsing the body:

    from verify_webhook import verify_webhook

    verify_webhook(headers, raw_body, os.environ["RUNAPI_WEBHOOK_SECRET"])  # raises ValueError

`headers` must have lower-case names (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
Deduplicate deliveries on `webhook-id`: retries of one event carry the same id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def verify_webhook(headers: dict[str, str], raw_body: bytes, secret: str, tolerance: int = 300) -> None:
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > tolerance:
        raise ValueError("webhook timestamp outside tolerance")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{ts}.".encode() + raw_body, hashlib.sha256).digest()
    ).decode()
    for entry in headers["webhook-signature"].split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return
    raise ValueError("no valid webhook signature")


if __name__ == "__main__":
    # Manual check: python verify_webhook.py <secret> <webhook-id> <timestamp> <signature> < body
    import sys

    if len(sys.argv) != 5:
        sys.exit("usage: verify_webhook.py SECRET WEBHOOK_ID TIMESTAMP SIGNATURE < raw_body")
    secret_arg, id_arg, ts_arg, sig_arg = sys.argv[1:]
    fields = {"webhook-id": id_arg, "webhook-timestamp": ts_arg, "webhook-signature": sig_arg}
    verify_webhook(fields, sys.stdin.buffer.read(), secret_arg)
    print("valid")
