"""Webhooks: the outbox rows, their signed delivery, per-key secrets and the SSRF checks."""
