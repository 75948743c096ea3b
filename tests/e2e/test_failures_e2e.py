"""One upstream failure, three surfaces, three error shapes (issue 4, protocols.md §1.7, §2.5, §3.7,
§6.9, §6.10): the simulator fails on command and each official SDK sees its own API's error, raised
from the status before a stream starts and in-stream once it has."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from tests.procs import (
    Gateway,
    Proc,
    Tenant,
    gateway_env,
    http_json,
    http_raw,
    new_tenant,
    running_gateway,
    sqlite_url,
    wait_for,
)

MODEL = "MiniMax-M2.7"


@pytest.fixture(scope="module", params=["first-call", "paid"])
def tenant(gateway: Gateway, request: pytest.FixtureRequest) -> Tenant:
    """Both admission paths. While the model's free first call may apply (a failed one keeps
    it), admission waits for the ledger before the upstream call; once it is used, the upstream
    call starts while the hold is written, and a failure may come back before the hold does."""
    t = new_tenant(gateway)
    if request.param == "paid":
        free = oai(gateway, t).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt("tokens=2")}]
        )
        assert free.choices[0].message.content
    return t


def oai(gw: Gateway, t: Tenant) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=t.api_key, max_retries=0)


def claude(gw: Gateway, t: Tenant) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=t.api_key, max_retries=0)


def prompt(directive: str) -> str:
    return f"Tell me something\n@sim {directive}"


def failed_task(gw: Gateway, t: Tenant, task_id: str, code: str) -> None:
    """A failed generation is recorded as such and costs nothing (§3.3, §8.5)."""

    def ended() -> dict[str, Any] | None:
        status, _, body = http_json(
            "GET", f"{gw.url}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {t.api_key}"}
        )
        assert status == 200, body
        return body if isinstance(body, dict) and body["status"] != "processing" else None

    task = wait_for(ended, 15, 0.05, f"task {task_id} to end")
    assert isinstance(task, dict)
    assert task["status"] == "failed", task
    assert task["error_code"] == code
    assert task["error"]
    assert task["cost"]["amount_micros"] == 0
    assert task["cost"]["billed"] is False
    assert task["cost"]["zero_charge_reason"] == "failed"


@dataclass(frozen=True)
class Failure:
    directive: str
    openai_status: int
    openai_class: type[openai.APIStatusError]
    openai_code: str
    anthropic_status: int
    anthropic_class: type[anthropic.APIStatusError]
    anthropic_type: str


# What a MiniMax failure before the first byte becomes on each surface (protocols.md §6.10).
BEFORE_FIRST_BYTE = [
    Failure(
        "error=500",
        502,
        openai.InternalServerError,
        "upstream_error",
        502,
        anthropic.InternalServerError,
        "api_error",
    ),
    Failure(
        "error=429",
        429,
        openai.RateLimitError,
        "rate_limit_exceeded",
        429,
        anthropic.RateLimitError,
        "rate_limit_error",
    ),
    Failure(
        "error=529",
        503,
        openai.InternalServerError,
        "server_is_overloaded",
        529,
        anthropic.OverloadedError,
        "overloaded_error",
    ),
    Failure(
        "error=503",
        503,
        openai.InternalServerError,
        "server_is_overloaded",
        529,
        anthropic.OverloadedError,
        "overloaded_error",
    ),
]
IDS = [f.directive for f in BEFORE_FIRST_BYTE]


# ---------------------------------------------------------------- non-streaming: the status carries it


@pytest.mark.parametrize("failure", BEFORE_FIRST_BYTE, ids=IDS)
def test_chat_completions_error_envelope(gateway: Gateway, tenant: Tenant, failure: Failure) -> None:
    with pytest.raises(failure.openai_class) as caught:
        oai(gateway, tenant).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt(failure.directive)}]
        )
    exc = caught.value
    assert exc.status_code == failure.openai_status
    assert exc.code == failure.openai_code
    assert exc.type in ("server_error", "requests", "tokens")
    assert exc.request_id
    assert exc.request_id.startswith("req_")
    raw = exc.response.json()
    assert set(raw) == {"error"}
    assert raw["error"]["message"]
    failed_task(gateway, tenant, exc.response.headers["X-RunAPI-Task-Id"], failure.openai_code)


@pytest.mark.parametrize("failure", BEFORE_FIRST_BYTE, ids=IDS)
def test_responses_error_envelope(gateway: Gateway, tenant: Tenant, failure: Failure) -> None:
    with pytest.raises(failure.openai_class) as caught:
        oai(gateway, tenant).responses.create(model=MODEL, input=prompt(failure.directive))
    exc = caught.value
    assert exc.status_code == failure.openai_status
    assert exc.code == failure.openai_code
    raw = exc.response.json()
    assert set(raw) == {"error"}
    assert raw["error"]["message"]
    failed_task(gateway, tenant, exc.response.headers["X-RunAPI-Task-Id"], failure.openai_code)


@pytest.mark.parametrize("streamed", [False, True], ids=["create", "stream"])
@pytest.mark.parametrize("failure", BEFORE_FIRST_BYTE, ids=IDS)
def test_anthropic_messages_error_envelope(
    gateway: Gateway, tenant: Tenant, failure: Failure, streamed: bool
) -> None:
    """Streamed or not: a stream answers only with the upstream's first event, so a failure
    before it gets the same status and envelope (and the SDK's retries)."""
    client = claude(gateway, tenant)

    def call() -> None:
        if streamed:
            stream_claude(client, failure.directive, [], {})
        else:
            client.messages.create(
                model=MODEL, max_tokens=200, messages=[{"role": "user", "content": prompt(failure.directive)}]
            )

    with pytest.raises(failure.anthropic_class) as caught:
        call()
    exc = caught.value
    assert exc.status_code == failure.anthropic_status
    body = exc.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == failure.anthropic_type
    assert body["error"]["message"]
    assert body["request_id"] == exc.response.headers["request-id"] == exc.request_id
    failed_task(gateway, tenant, exc.response.headers["X-RunAPI-Task-Id"], failure.openai_code)


# ---------------------------------------------------------------- streaming helpers


def drain_chat(stream: Iterable[Any], text: list[str]) -> None:
    """Read a Chat stream to its end (or its error), keeping the content."""
    for chunk in stream:
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            assert choice.finish_reason is None, "a failed stream never finishes"


def stream_claude(
    client: anthropic.Anthropic, directive: str, text: list[str], headers: dict[str, str]
) -> None:
    """`messages.stream()` to its end (or its error), keeping the text and the response headers."""
    with client.messages.stream(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": prompt(directive)}]
    ) as stream:
        headers.update({k.lower(): v for k, v in stream.response.headers.items()})
        text.extend(stream.text_stream)


MID_STREAM = [
    ("error_after=3", "upstream_error"),
    ("disconnect_after=3", "upstream_disconnected"),
]
MID_IDS = [m[0] for m in MID_STREAM]


# ---------------------------------------------------------------- streaming: a status before the first event


OPENAI_STREAMS: dict[str, Callable[[openai.OpenAI, str], object]] = {
    "chat": lambda client, text: client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], stream=True
    ),
    "responses": lambda client, text: client.responses.create(model=MODEL, input=text, stream=True),
}


@pytest.mark.parametrize("surface", list(OPENAI_STREAMS))
@pytest.mark.parametrize("failure", BEFORE_FIRST_BYTE, ids=IDS)
def test_openai_stream_failing_before_the_first_event_answers_with_its_status(
    gateway: Gateway, tenant: Tenant, failure: Failure, surface: str
) -> None:
    """Nothing is sent before the upstream's first event, so a failure before it is a real HTTP
    status: `create()` itself raises the status's class, and the SDK's own retries would apply."""
    with pytest.raises(failure.openai_class) as caught:
        OPENAI_STREAMS[surface](oai(gateway, tenant), prompt(failure.directive))
    exc = caught.value
    assert exc.status_code == failure.openai_status
    assert exc.code == failure.openai_code
    assert exc.response.headers["content-type"].startswith("application/json")
    assert exc.response.headers["x-ratelimit-limit-requests"]
    failed_task(gateway, tenant, exc.response.headers["X-RunAPI-Task-Id"], failure.openai_code)


@pytest.mark.parametrize("failure", BEFORE_FIRST_BYTE[:2], ids=IDS[:2])
def test_an_idempotent_retry_of_a_stream_that_failed_before_its_first_event_gets_the_same_status(
    gateway: Gateway, tenant: Tenant, failure: Failure
) -> None:
    """The replay answers as the live call did: the same HTTP status and error, not a 200 stream
    ending in the error; and no second generation."""
    client = oai(gateway, tenant)
    key = {"Idempotency-Key": f"stream-{uuid.uuid4().hex}"}
    text = prompt(failure.directive)
    answers = []
    for _ in range(2):
        with pytest.raises(failure.openai_class) as caught:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": text}], stream=True, extra_headers=key
            )
        answers.append(caught.value)
    live, replay = answers
    assert (
        (replay.status_code, replay.code)
        == (live.status_code, live.code)
        == (
            failure.openai_status,
            failure.openai_code,
        )
    )
    assert replay.response.headers["x-runapi-idempotent-replay"] == "true"
    assert replay.response.headers["X-RunAPI-Task-Id"] == live.response.headers["X-RunAPI-Task-Id"]
    task_id = live.response.headers["X-RunAPI-Task-Id"]
    failed_task(gateway, tenant, task_id, failure.openai_code)
    # Its event log is empty (no stream was sent); the events route shows the stored outcome.
    bearer = {"Authorization": f"Bearer {tenant.api_key}"}
    status, _, raw = http_raw("GET", f"{gateway.url}/v1/tasks/{task_id}/events", headers=bearer)
    assert status == 200
    assert failure.openai_code.encode() in raw


# ---------------------------------------------------------------- streaming: in-stream once it started


@pytest.mark.parametrize(("directive", "code"), MID_STREAM, ids=MID_IDS)
def test_chat_stream_failure_is_an_in_stream_error_the_sdk_raises(
    gateway: Gateway, tenant: Tenant, directive: str, code: str
) -> None:
    client = oai(gateway, tenant)
    with client.chat.completions.with_streaming_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt(f"{directive} tokens=8 reasoning=1")}],
        stream=True,
    ) as raw:
        assert raw.http_response.status_code == 200
        task_id = raw.headers["X-RunAPI-Task-Id"]
        text: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            drain_chat(raw.parse(), text)
    assert len("".join(text).split()) == 3, "the three tokens before the failure arrived"
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "server_error"
    assert body["code"] == code
    failed_task(gateway, tenant, task_id, code)


@pytest.mark.parametrize(("directive", "code"), MID_STREAM, ids=MID_IDS)
def test_responses_stream_failure_ends_with_response_failed_then_error(
    gateway: Gateway, tenant: Tenant, directive: str, code: str
) -> None:
    client = oai(gateway, tenant)
    events = list(
        client.responses.create(model=MODEL, input=prompt(f"{directive} tokens=8 reasoning=1"), stream=True)
    )
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-2:] == ["response.failed", "error"]
    assert "response.completed" not in types
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len("".join(deltas).split()) == 3
    failed = events[-2].response  # type: ignore[union-attr]
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.message
    assert events[-1].code == code  # type: ignore[union-attr]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    failed_task(gateway, tenant, "resp_" + failed.id.removeprefix("resp_"), code)

    # The stream() helper sees the failure too: no final response to hand out.
    with client.responses.stream(model=MODEL, input=prompt(f"{directive} tokens=8 reasoning=1")) as helper:
        seen = [e.type for e in helper]
        assert seen[-2:] == ["response.failed", "error"]
        with pytest.raises(RuntimeError):
            helper.get_final_response()


@pytest.mark.parametrize(("directive", "code"), MID_STREAM, ids=MID_IDS)
def test_anthropic_stream_failure_is_an_error_event(
    gateway: Gateway, tenant: Tenant, directive: str, code: str
) -> None:
    text: list[str] = []
    headers: dict[str, str] = {}
    with pytest.raises(anthropic.APIStatusError) as caught:
        stream_claude(claude(gateway, tenant), f"{directive} tokens=8 reasoning=1", text, headers)
    task_id = headers["x-runapi-task-id"]
    assert len("".join(text).split()) == 3
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "api_error"
    assert body["error"]["message"]
    failed_task(gateway, tenant, task_id, code)


# ---------------------------------------------------------------- a slow upstream: keepalives open the stream


@pytest.fixture(scope="module")
def quick_keepalive(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway that waits only 0.2 s for the upstream's first event before opening the stream."""
    env = gateway_env(
        sqlite_url(tmp_path_factory.mktemp("keepalive")),
        simulator.url,
        RUNAPI_STREAM_KEEPALIVE_SECONDS="0.2",
    )
    with running_gateway(env, "100") as gw:
        yield gw


def test_a_slow_first_event_opens_the_stream_with_keepalives_then_fails_in_stream(
    quick_keepalive: Gateway,
) -> None:
    """MiniMax thinks for seconds before its first byte; the client must see the stream open
    (keepalive comments) meanwhile, so a later failure can only travel in the stream."""
    t = new_tenant(quick_keepalive)
    with oai(quick_keepalive, t).chat.completions.with_streaming_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt("ttft_ms=900 tokens=8 error_after=2")}],
        stream=True,
    ) as raw:
        assert raw.http_response.status_code == 200
        task_id = raw.headers["X-RunAPI-Task-Id"]
        lines = list(raw.iter_lines())
    keepalives = [i for i, line in enumerate(lines) if line.startswith(":")]
    data = [i for i, line in enumerate(lines) if line.startswith("data: ")]
    assert len(keepalives) >= 2, lines  # one every 0.2 s while the upstream thinks for 0.9 s
    assert data[0] == 0, "the stream opens with its first chunk"
    assert '"role":"assistant"' in lines[0]
    assert max(keepalives) < data[1], "then keepalives, until the upstream's first event"
    assert '"error"' in lines[data[-1]]
    failed_task(quick_keepalive, t, task_id, "upstream_error")
