"""Errors: auth, MiniMax's 2013 rejections, requested errors, base_resp, error_rate."""

from __future__ import annotations

from typing import Any

import pytest

from runapi.simulator import SimConfig

from .conftest import SimFactory
from .helpers import Sim, body


def error_of(data: dict[str, Any]) -> tuple[str, str, str]:
    assert data["type"] == "error"
    error = data["error"]
    return error["type"], error["message"], error["http_code"]


async def test_unknown_model(sim: Sim) -> None:
    reply = await sim.post(body("hi", model="x"))
    assert reply.status == 400
    data = reply.json()
    assert error_of(data) == ("bad_request_error", "invalid params, unknown model 'x' (2013)", "400")
    assert data["request_id"] == reply.headers["trace-id"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}])
async def test_missing_or_malformed_auth(sim: Sim, headers: dict[str, str]) -> None:
    reply = await sim.post(body("hi"), headers=headers)
    assert reply.status == 401
    kind, message, _ = error_of(reply.json())
    assert kind == "authorized_error"
    assert message.endswith("(1004)")
    assert reply.headers["trace-id"]


async def test_configured_api_key(make_sim: SimFactory) -> None:
    sim = await make_sim(SimConfig(api_key="test-key"))
    assert (await sim.post(body("hi"))).status == 200
    assert (await sim.post(body("hi"), headers={"Authorization": "Bearer wrong"})).status == 401


def with_history(*messages: dict[str, Any], model: str = "MiniMax-M2.7") -> dict[str, Any]:
    return {"model": model, "messages": list(messages)}


CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
CALL2 = {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}
USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"[]", "request body must be a JSON object"),
        ({"model": "MiniMax-M2.7"}, "missing required field `messages`"),
        ({"model": "MiniMax-M2.7", "messages": []}, "messages must not be empty"),
        (with_history({"role": "developer", "content": "x"}, USER), "invalid message role: developer"),
        (
            with_history({"role": "system", "content": "a"}, {"role": "system", "content": "b"}, USER),
            "invalid message role: system",
        ),
        (
            with_history(
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{oops"}}],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "r"},
            ),
            "invalid function arguments json string",
        ),
        (
            with_history(USER, {"role": "tool", "tool_call_id": "nope", "content": "r"}),
            "tool id(nope) not found",
        ),
        (
            with_history(
                USER,
                {"role": "assistant", "tool_calls": [CALL, CALL2]},
                {"role": "tool", "tool_call_id": "call_1", "content": "r"},
                USER,
            ),
            "tool call result does not follow tool call",
        ),
        (
            with_history(
                USER,
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": {"temp": 21}},
            ),
            "content of a tool message must be a string",
        ),
        ({**body("hi"), "thinking": True}, "thinking must be an object"),
        ({**body("hi"), "max_tokens": 0}, "max_tokens must be greater than 0"),
        ({**body("hi", model="MiniMax-M3"), "max_tokens": 600_000}, "less than or equal to 524288"),
        (
            {**body("hi"), "tools": [{"type": "function", "function": {"name": "f", "strict": None}}]},
            "strict must be a boolean",
        ),
        ({**body("hi\n@sim tool=nope")}, "tool='nope' names no tool of the request"),
        (body("a " * 205_000), "context window exceeds limit"),
        (body("hi", model="MiniMax-M3", reasoning_effort="extreme"), "reasoning_effort must be one of"),
        (body("hi", model="MiniMax-M3", reasoning_effort="none"), "reasoning_effort none conflicts"),
    ],
)
async def test_requests_minimax_rejects(sim: Sim, payload: Any, fragment: str) -> None:
    reply = await sim.post(payload)
    assert reply.status == 400
    kind, message, http_code = error_of(reply.json())
    assert (kind, http_code) == ("bad_request_error", "400")
    assert message.startswith("invalid params, ")
    assert message.endswith("(2013)")
    assert fragment in message


async def test_what_minimax_accepts(sim: Sim) -> None:
    two_systems = with_history(
        {"role": "system", "content": "a"}, {"role": "system", "content": "b"}, USER, model="MiniMax-M3"
    )
    assert (await sim.post(two_systems)).status == 200
    answered = with_history(
        USER,
        {"role": "assistant", "content": "", "tool_calls": [CALL, CALL2]},
        {"role": "tool", "tool_call_id": "call_2", "content": "r2"},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "r1"}]},
    )
    assert (await sim.post(answered)).status == 200
    assert (await sim.post({**body("hi"), "n": 3})).status == 200
    assert (await sim.post(body("a " * 205_000, model="MiniMax-M3"))).status == 200
    for effort in ("minimal", "high", "max"):
        assert (await sim.post(body("hi", model="MiniMax-M3", reasoning_effort=effort))).status == 200
    off = body("hi", model="MiniMax-M3", reasoning_effort="none", thinking={"type": "disabled"})
    assert (await sim.post(off)).status == 200
    assert (await sim.post(body("hi", reasoning_effort="extreme"))).status == 200  # M2.x ignores it


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (400, "bad_request_error", 2013),
        (401, "authorized_error", 1004),
        (429, "rate_limit_error", 1002),
        (503, "api_error", 1000),
        (504, "api_error", 1001),
        (529, "overloaded_error", 2064),
        (418, "bad_request_error", 2013),
        (599, "api_error", 1000),
    ],
)
async def test_error_directive(sim: Sim, status: int, kind: str, code: int) -> None:
    reply = await sim.post(body(f"hi\n@sim error={status}"))
    assert reply.status == status
    got_kind, message, http_code = error_of(reply.json())
    assert (got_kind, http_code) == (kind, str(status))
    assert message.endswith(f"({code})")
    assert "Retry-After" not in reply.headers


async def test_rate_limit_message_and_retry_after(sim: Sim) -> None:
    reply = await sim.post(body("hi\n@sim error=429 retry_after=3"))
    assert reply.headers["Retry-After"] == "3"
    assert error_of(reply.json())[1] == "rate limit exceeded(RPM) (1002)"


async def test_500_is_unknown_or_system_error(sim: Sim) -> None:
    messages = {error_of((await sim.post(body(f"hi {i}\n@sim error=500"))).json())[1] for i in range(12)}
    assert messages == {"unknown error (1000)", "system error (1033)"}


async def test_502_is_a_load_balancer_page(sim: Sim) -> None:
    reply = await sim.post(body("hi\n@sim error=502"))
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in reply.raw


async def test_error_directive_applies_to_streams_before_they_start(sim: Sim) -> None:
    reply = await sim.post({**body("hi\n@sim error=429"), "stream": True})
    assert reply.status == 429
    assert reply.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("code", [1002, 1008, 1027, 1039, 2056])
async def test_base_resp_error_is_http_200(sim: Sim, code: int) -> None:
    for stream in (False, True):
        reply = await sim.post({**body(f"hi\n@sim error=base_resp:{code}"), "stream": stream})
        assert reply.status == 200
        data = reply.json()
        assert list(data) == ["base_resp"]
        assert data["base_resp"]["status_code"] == code
        assert data["base_resp"]["status_msg"]


async def test_error_rate_is_retryable_and_deterministic(make_sim: SimFactory) -> None:
    always = await make_sim(SimConfig(error_rate=1))
    statuses = {(await always.post(body(f"q{i}"))).status for i in range(20)}
    assert statuses <= {429, 500, 503, 504, 529}
    assert len(statuses) > 1
    half = await make_sim(SimConfig(error_rate=0.5))
    outcomes = [(await half.post(body(f"q{i}"))).status for i in range(40)]
    assert outcomes == [(await half.post(body(f"q{i}"))).status for i in range(40)]
    assert 5 < sum(s != 200 for s in outcomes) < 35
