"""The shipped scripts/verify_webhook.py accepts what a Standard Webhooks signer produces."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from types import ModuleType

import pytest
from standardwebhooks.webhooks import Webhook

from runapi.skills import SkillCatalog

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = json.dumps({"type": "task.completed", "id": "task_01", "status": "completed"}).encode()

Verify = Callable[..., None]


@pytest.fixture
def verify_webhook(skills: SkillCatalog) -> Verify:
    source = skills.bundles["minimax"].skill_files["scripts/verify_webhook.py"]
    module = ModuleType("verify_webhook")
    exec(compile(source, "verify_webhook.py", "exec"), module.__dict__)
    fn: Verify = module.verify_webhook
    return fn


def _headers(
    secret: str, msg_id: str = "evt_01", ts: int | None = None, body: bytes = BODY
) -> dict[str, str]:
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(ts if ts is not None else int(time.time()), tz=UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def test_accepts_a_standard_webhooks_signature(verify_webhook: Verify) -> None:
    verify_webhook(_headers(SECRET), BODY, SECRET)


def test_accepts_either_signature_while_a_secret_rotates(verify_webhook: Verify) -> None:
    old, new = _headers(OTHER), _headers(SECRET)
    both = {**new, "webhook-signature": f"{old['webhook-signature']} {new['webhook-signature']}"}
    verify_webhook(both, BODY, SECRET)
    verify_webhook(both, BODY, OTHER)


def test_rejects_a_changed_body(verify_webhook: Verify) -> None:
    with pytest.raises(ValueError, match="no valid webhook signature"):
        verify_webhook(_headers(SECRET), BODY + b" ", SECRET)


def test_rejects_the_wrong_secret(verify_webhook: Verify) -> None:
    with pytest.raises(ValueError, match="no valid webhook signature"):
        verify_webhook(_headers(OTHER), BODY, SECRET)


def test_rejects_an_old_timestamp(verify_webhook: Verify) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        verify_webhook(_headers(SECRET, ts=int(time.time()) - 301), BODY, SECRET)
