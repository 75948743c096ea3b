"""Signed webhooks end to end (issue 7): a receiver run by the test verifies every delivery with the
`standardwebhooks` library, fails twice and gets the third attempt; callback URLs aimed at private
or metadata addresses are refused at submission."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import BACKENDS, database_for
from tests.procs import (
    Gateway,
    Proc,
    Tenant,
    drop_postgres,
    gateway_env,
    http_json,
    new_tenant,
    running_gateway,
    wait_for,
    write_config,
)

MODEL = "MiniMax-M2.7"

# Retries in fractions of a second instead of Standard Webhooks' minutes, polled often.
FAST_RETRIES = """
[webhooks]
retry_schedule = [0, 0.3, 0.3]
poll_interval_seconds = 0.1
"""


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1 answering with `statuses` in turn (the last one repeats)."""

    statuses: list[int]
    deliveries: list[Delivery] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/runapi"

    def status_for(self, n: int) -> int:
        return self.statuses[min(n, len(self.statuses) - 1)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(statuses=[200])
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                n = len(state.deliveries)
                state.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.status_for(n))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()


@pytest.fixture(scope="module", params=BACKENDS)
def hooks_gateway(
    request: pytest.FixtureRequest, simulator: Proc, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway of its own with the fast retry schedule (only the TOML config can set it)."""
    tmp = tmp_path_factory.mktemp(f"hooks-{request.param}")
    url = database_for(request.param, tmp)
    env = gateway_env(url, simulator.url, RUNAPI_CONFIG=write_config(tmp, FAST_RETRIES))
    with running_gateway(env, "100") as gw:
        yield gw
    if request.param == "postgres":
        drop_postgres(url)


@pytest.fixture(scope="module")
def tenant(hooks_gateway: Gateway) -> Tenant:
    return new_tenant(hooks_gateway)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def signing_secret(gw: Gateway, tenant: Tenant) -> str:
    status, _, body = http_json(
        "GET", f"{gw.url}/api/v1/api_keys/{tenant.key_id}/webhook_secret", headers=auth(tenant.api_key)
    )
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["secret"].startswith("whsec_")
    return str(body["secret"])


def submit_with_callback(
    gw: Gateway, tenant: Tenant, url: str, prompt: str = "call me back\n@sim tokens=3"
) -> str:
    status, headers, task = http_json(
        "POST",
        f"{gw.url}/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "callback_url": url},
        auth(tenant.api_key),
    )
    assert status == 202, task  # a callback_url implies async mode
    assert isinstance(task, dict)
    assert task["callback_url"] == url
    assert headers["location"] == f"/v1/tasks/{task['id']}"
    return str(task["id"])


def test_a_receiver_that_fails_twice_gets_the_third_signed_delivery(
    hooks_gateway: Gateway, tenant: Tenant, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500, 200]
    secret = signing_secret(hooks_gateway, tenant)
    task_id = submit_with_callback(hooks_gateway, tenant, receiver.url)

    wait_for(lambda: len(receiver.deliveries) >= 3, 30, 0.05, "three webhook deliveries")
    deliveries = receiver.deliveries[:3]
    verifier = Webhook(secret)
    payloads = [verifier.verify(d.body, d.headers) for d in deliveries]  # raises unless signed by our key
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1, (
        "one event, the same webhook-id on every retry"
    )
    assert deliveries[0].headers["webhook-id"].startswith("evt_")
    for payload in payloads:
        assert payload["type"] == "task.completed"
        assert payload["id"] == task_id
        assert payload["object"] == "task"
        assert payload["status"] == "completed"
        assert payload["response"]["status"] == 200
        assert payload["response"]["body"]["object"] == "chat.completion"
        assert payload["cost"]["amount_micros"] > 0
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=").verify(
            deliveries[0].body, deliveries[0].headers
        )

    def log() -> dict[str, Any] | None:
        status, _, body = http_json(
            "GET", f"{hooks_gateway.url}/v1/tasks/{task_id}/deliveries", headers=auth(tenant.api_key)
        )
        assert status == 200, body
        return body if isinstance(body, dict) and body["callback_succeeded"] is True else None

    attempts = wait_for(log, 10, 0.05, "callback_succeeded")
    assert isinstance(attempts, dict)
    assert [a["attempt"] for a in attempts["data"]] == [1, 2, 3]
    assert [a["status_code"] for a in attempts["data"]] == [500, 500, 200]
    assert {a["webhook_id"] for a in attempts["data"]} == {deliveries[0].headers["webhook-id"]}
    assert attempts["callback_url"] == receiver.url
    _, _, task = http_json("GET", f"{hooks_gateway.url}/v1/tasks/{task_id}", headers=auth(tenant.api_key))
    assert isinstance(task, dict)
    assert task["callback_succeeded"] is True
    assert len(receiver.deliveries) == 3, "a 2xx ends delivery"


def test_redeliver_sends_the_same_event_again(
    hooks_gateway: Gateway, tenant: Tenant, receiver: Receiver
) -> None:
    task_id = submit_with_callback(hooks_gateway, tenant, receiver.url)
    wait_for(lambda: len(receiver.deliveries) >= 1, 30, 0.05, "the first delivery")
    status, _, queued = http_json(
        "POST", f"{hooks_gateway.url}/v1/tasks/{task_id}/deliveries/redeliver", {}, auth(tenant.api_key)
    )
    assert status == 202, queued
    wait_for(lambda: len(receiver.deliveries) >= 2, 30, 0.05, "the redelivery")
    first, again = receiver.deliveries[:2]
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert isinstance(queued, dict)
    assert queued["webhook_id"] == first.headers["webhook-id"]
    Webhook(signing_secret(hooks_gateway, tenant)).verify(again.body, again.headers)


def test_a_rotated_secret_overlaps_with_two_signatures(hooks_gateway: Gateway, receiver: Receiver) -> None:
    own = new_tenant(hooks_gateway)
    old = signing_secret(hooks_gateway, own)
    status, _, rotated = http_json(
        "POST",
        f"{hooks_gateway.url}/api/v1/api_keys/{own.key_id}/webhook_secret/rotate",
        {"keep_old_secret_active_for_24_hours": True},
        auth(own.api_key),
    )
    assert status == 200, rotated
    new = signing_secret(hooks_gateway, own)
    assert new != old
    submit_with_callback(hooks_gateway, own, receiver.url)
    wait_for(lambda: receiver.deliveries, 30, 0.05, "a delivery")
    delivery = receiver.deliveries[0]
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(delivery.body, delivery.headers)
    Webhook(old).verify(delivery.body, delivery.headers)


def test_metadata_host_names_are_refused_even_when_private_targets_are_allowed(
    hooks_gateway: Gateway, tenant: Tenant
) -> None:
    for url in ("http://metadata.google.internal/computeMetadata/v1/", "https://metadata/hook"):
        status, _, body = http_json(
            "POST",
            f"{hooks_gateway.url}/v1/chat/completions",
            {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "callback_url": url},
            auth(tenant.api_key),
        )
        assert status == 400, body
        assert isinstance(body, dict)
        assert body["error"]["code"] == "invalid_callback_url"
        assert body["error"]["param"] == "callback_url"


@pytest.fixture(scope="module", params=BACKENDS)
def strict_gateway(
    request: pytest.FixtureRequest, simulator: Proc, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway as production runs it: no http, no private targets."""
    tmp: Path = tmp_path_factory.mktemp(f"strict-{request.param}")
    url = database_for(request.param, tmp)
    env = gateway_env(
        url, simulator.url, RUNAPI_WEBHOOKS_ALLOW_PRIVATE="false", RUNAPI_WEBHOOKS_ALLOW_HTTP="false"
    )
    with running_gateway(env, "100") as gw:
        yield gw
    if request.param == "postgres":
        drop_postgres(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://127.0.0.1:8443/hook",
        "https://[::1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://localhost/hook",
        "http://example.com/hook",
    ],
)
def test_private_link_local_and_plain_http_callbacks_are_refused(strict_gateway: Gateway, url: str) -> None:
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "callback_url": url}
    status, headers, answer = http_json(
        "POST", f"{strict_gateway.url}/v1/chat/completions", chat, auth(strict_gateway.api_key)
    )
    assert status == 400, answer
    assert isinstance(answer, dict)
    assert answer["error"]["code"] == "invalid_callback_url"
    assert answer["error"]["param"] == "callback_url"
    assert "x-runapi-task-id" not in headers, "refused before a task exists"
    # The same rule on the Anthropic surface, in its own envelope.
    message = {**chat, "max_tokens": 50}
    status, _, answer = http_json(
        "POST", f"{strict_gateway.url}/v1/messages", message, auth(strict_gateway.api_key)
    )
    assert status == 400, answer
    assert isinstance(answer, dict)
    assert answer["type"] == "error"
    assert answer["error"]["type"] == "invalid_request_error"
    assert "callback_url" in answer["error"]["message"]
