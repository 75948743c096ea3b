"""Tasks: every generation stored by id (outputs only), events for replay, async runs,
idempotency keys, and signed webhooks from a durable outbox. The public API is `runapi.tasks.service`."""
