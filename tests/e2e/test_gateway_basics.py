"""Gateway-wide behaviour: first start, imported keys, body limits, surfaces sharing a conversation."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import anthropic
import httpx2
import openai

from tests.procs import PYTHON, Gateway, gateway_env, http_json, sqlite_url, start_process


def test_first_start_on_an_empty_database_prints_a_working_key(tmp_path: Path) -> None:
    env = gateway_env(sqlite_url(tmp_path), None)
    proc = start_process(
        [PYTHON, "-m", "runapi.cli.main", "serve", "--host", "127.0.0.1", "--port", "0"], env
    )
    try:
        printed = "".join(proc.log)
        match = re.search(r"(sk-ra-[A-Za-z0-9_-]+)", printed)
        assert match, printed
        status, _, body = http_json(
            "GET", proc.url + "/v1/models", headers={"Authorization": f"Bearer {match.group(1)}"}
        )
        assert status == 200
        assert isinstance(body, dict)
        assert "SmolLM2-135M-Instruct" in {m["id"] for m in body["data"]}
    finally:
        proc.stop()


def test_an_imported_key_value_works(gateway: Gateway) -> None:
    account_id, _ = gateway.new_account("1")
    secret = "legacy-gateway-key-0001"
    created = json.loads(
        gateway.cli("keys", "create", "--account", str(account_id), "--value", secret, "--json")
    )
    assert created["api_key"] == secret
    client = openai.OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
    assert client.models.list().data
    done = subprocess.run(
        [PYTHON, "-m", "runapi.cli.main", "keys", "create", "--account", str(account_id), "--value", "short"],
        env=gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0


def test_an_oversized_body_is_413_in_each_dialect(gateway: Gateway) -> None:
    huge = "x" * (9 * 1024 * 1024)  # over the default 8 MiB limit
    auth = {"Authorization": f"Bearer {gateway.api_key}"}
    status, headers, body = http_json(
        "POST",
        gateway.base_url + "/chat/completions",
        {"model": "MiniMax-M2.7", "messages": [{"role": "user", "content": huge}]},
        auth,
    )
    assert status == 413
    assert isinstance(body, dict)
    assert body["error"]["code"] == "request_too_large"
    assert headers.get("x-request-id")
    status, _, body = http_json(
        "POST",
        gateway.url + "/v1/messages",
        {"model": "MiniMax-M2.7", "max_tokens": 8, "messages": [{"role": "user", "content": huge}]},
        {**auth, "anthropic-version": "2023-06-01"},
    )
    assert status == 413
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "request_too_large"


def test_a_tool_conversation_started_on_chat_continues_on_anthropic(gateway: Gateway) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
    chat = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    ask = "Look it up\n@sim tool=lookup reasoning=3"
    first = chat.chat.completions.create(
        model="MiniMax-M2.7",
        messages=[{"role": "user", "content": ask}],
        tools=[tool],  # type: ignore[list-item]
    )
    message = first.choices[0].message
    assert message.tool_calls
    call = message.tool_calls[0]
    reasoning = getattr(message, "reasoning_content", None)
    assert reasoning
    # The same turn, expressed in Anthropic's blocks, continues on /v1/messages.
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.api_key, max_retries=0)
    second = claude.messages.create(
        model="MiniMax-M2.7",
        max_tokens=256,
        tools=[{"name": "lookup", "input_schema": tool["function"]["parameters"]}],  # type: ignore[index,list-item]
        messages=[
            {"role": "user", "content": ask},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": message.content or "Looking it up."},
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": "lookup",
                        "input": json.loads(call.function.arguments),
                    },
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "found it"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert any(block.type == "text" and block.text for block in second.content)


def test_the_overhead_header_leaves_out_the_wait_on_upstream(gateway: Gateway) -> None:
    """x-runapi-overhead-ms: time in the gateway, upstream excluded (the simulator takes ~0.5 s)."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    slow = "Write about the sea.\n@sim tokens=50 tps=100 reasoning=0"
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model="MiniMax-M2.7", messages=[{"role": "user", "content": slow}]
    )
    elapsed_ms = (time.monotonic() - started) * 1000
    assert raw.parse().choices[0].message.content
    overhead_ms = float(raw.headers["x-runapi-overhead-ms"])
    assert elapsed_ms > 450  # the upstream really took its half second ...
    assert 0 < overhead_ms < elapsed_ms - 300  # ... and it is not counted as overhead

    with client.chat.completions.with_streaming_response.create(
        model="MiniMax-M2.7", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as streamed:
        assert float(streamed.headers["x-runapi-overhead-ms"]) > 0
        assert any(line.startswith("data: [DONE]") for line in streamed.iter_lines())

    claude = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.api_key, max_retries=0)
    message = claude.messages.with_raw_response.create(
        model="MiniMax-M2.7", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.parse().content
    assert float(message.headers["x-runapi-overhead-ms"]) > 0

    # A refusal is all gateway: its header is the whole time taken.
    status, headers, _ = http_json(
        "POST",
        gateway.base_url + "/chat/completions",
        {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
        {"Authorization": f"Bearer {gateway.api_key}"},
    )
    assert status == 404
    assert float(headers["x-runapi-overhead-ms"]) >= 0


def test_sdk_calls_reach_the_lean_server_and_share_connections_with_aiohttp(gateway: Gateway) -> None:
    """`runapi serve` answers generation routes with its lean protocol; a connection whose first
    request is another route belongs to aiohttp, and the SDK's calls on it still work, streamed or
    not (runapi.server.lean)."""
    _, key = gateway.new_account("1")
    body = {"model": "MiniMax-M2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}

    lean = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
    raw = lean.chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    assert raw.headers["server"] == "runapi"
    assert raw.parse().choices[0].message.content

    # One connection (httpx keeps it alive): its first request is GET /v1/models, so it is aiohttp's.
    handed = openai.OpenAI(
        base_url=gateway.base_url,
        api_key=key,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(limits=httpx2.Limits(max_connections=1)),
    )
    assert handed.models.with_raw_response.list().headers["server"].startswith("Python")
    raw = handed.chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    assert raw.headers["server"].startswith("Python")
    assert raw.parse().usage.completion_tokens > 0
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in handed.chat.completions.create(stream=True, **body)  # type: ignore[call-overload]
        if c.choices
    )
    assert streamed
