"""Streaming: framing, MiniMax quirks, reasoning fragments, tool-call fragments, breaks, pacing."""

from __future__ import annotations

import json
import time

import aiohttp
import jsonschema
import pytest

from runapi.simulator import SimConfig, count_text_tokens

from .conftest import SimFactory
from .helpers import Sim, body
from .test_chat import CLOCK, WEATHER


async def test_stream_framing_and_usage_chunk(sim: Sim) -> None:
    request = body("hi\n@sim tokens=5 reasoning=3", stream_options={"include_usage": True})
    stream = await sim.stream(request)
    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert stream.events[-1] == "[DONE]"
    chunks = stream.chunks
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert {c["id"] for c in chunks} == {stream.headers["trace-id"]}
    assert all(c["base_resp"]["status_code"] == 0 and c["input_sensitive"] is False for c in chunks)
    roles = [d.get("role") for d in stream.deltas]
    assert roles[0] == "assistant"
    assert roles[1:].count("assistant") == 0
    finish = chunks[-2]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert all(c["usage"] is None for c in chunks[:-1])
    plain = (await sim.post(request)).json()
    assert usage_chunk["usage"] == plain["usage"]
    assert stream.text() == plain["choices"][0]["message"]["content"]


async def test_no_usage_chunk_without_include_usage(sim: Sim) -> None:
    stream = await sim.stream(body("hi"))
    assert all(c["choices"] for c in stream.chunks)
    assert all(c["usage"] is None for c in stream.chunks)


async def test_split_reasoning_fragments_are_incremental_and_apart_from_content(sim: Sim) -> None:
    request = body("hi\n@sim tokens=6 reasoning=5", reasoning_split=True)
    stream = await sim.stream(request)
    message = (await sim.post(request)).json()["choices"][0]["message"]
    for delta in stream.deltas:
        assert not (delta.get("content") and delta.get("reasoning_content"))
    fragments = [d["reasoning_content"] for d in stream.deltas if "reasoning_content" in d]
    assert len(fragments) == 5
    assert "".join(fragments) == message["reasoning_content"]
    details = [d["reasoning_details"][0]["text"] for d in stream.deltas if "reasoning_details" in d]
    assert details == fragments
    assert stream.text() == message["content"]


async def test_inline_think_tag_is_split_across_chunks(sim: Sim) -> None:
    request = body("hi\n@sim tokens=3 reasoning=2 tag_split=4")
    stream = await sim.stream(request)
    pieces = [d["content"] for d in stream.deltas if d.get("content")]
    assert pieces[0].startswith("<think>\n")
    assert pieces[1].endswith("\n</t")
    assert pieces[2].startswith("hink>\n\n")
    assert stream.text() == (await sim.post(request)).json()["choices"][0]["message"]["content"]


async def test_tag_split_is_deterministic_per_request(sim: Sim) -> None:
    request = body("hi\n@sim tokens=3 reasoning=2")
    first, second = await sim.stream(request), await sim.stream(request)
    assert first.deltas == second.deltas


async def test_chunk_tokens_groups_tokens(make_sim: SimFactory) -> None:
    sim = await make_sim(SimConfig(chunk_tokens=4))
    stream = await sim.stream(body("hi\n@sim tokens=10 think=off"))
    assert [count_text_tokens(d.get("content", "")) for d in stream.deltas] == [4, 4, 2, 0]
    per_request = await sim.stream(body("hi\n@sim tokens=10 think=off chunk_tokens=5"))
    assert len(per_request.deltas) == 3


async def test_streamed_tool_calls_reassemble(sim: Sim) -> None:
    request = body("go\n@sim tool=get_weather,get_time", tools=[WEATHER, CLOCK], reasoning_split=True)
    stream = await sim.stream(request)
    expected = (await sim.post(request)).json()["choices"][0]["message"]["tool_calls"]
    assembled: dict[int, dict[str, str]] = {}
    fragments = 0
    for delta in stream.deltas:
        for part in delta.get("tool_calls", []):
            if "id" in part:
                assert part["function"]["arguments"] == ""
                assert part["type"] == "function"
                assembled[part["index"]] = {
                    "id": part["id"],
                    "name": part["function"]["name"],
                    "arguments": "",
                }
            else:
                assert set(part) == {"index", "function"}
                assembled[part["index"]]["arguments"] += part["function"]["arguments"]
                fragments += 1
    assert fragments >= 4  # two calls, each split in at least two pieces
    assert [assembled[i] for i in sorted(assembled)] == [
        {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
        for c in expected
    ]
    jsonschema.validate(json.loads(assembled[1]["arguments"]), CLOCK["function"]["parameters"])
    assert stream.chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_no_done_directive_and_omit_done_config(make_sim: SimFactory) -> None:
    sim = await make_sim()
    stream = await sim.stream(body("hi\n@sim no_done=1", stream_options={"include_usage": True}))
    assert "[DONE]" not in stream.events
    assert stream.broken is None
    assert stream.chunks[-1]["choices"] == []
    omitting = await make_sim(SimConfig(omit_done=True))
    stream = await omitting.stream(body("hi"))
    assert "[DONE]" not in stream.events
    assert stream.chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_max_tokens_in_stream(sim: Sim) -> None:
    stream = await sim.stream(body("hi\n@sim tokens=9 reasoning=0", max_tokens=4))
    assert count_text_tokens(stream.text()) == 4
    assert stream.chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_error_after_sends_error_frame(sim: Sim) -> None:
    stream = await sim.stream(
        body("hi\n@sim tokens=10 error_after=3 error_code=1027 chunk_tokens=2", reasoning_split=True)
    )
    assert stream.broken is None
    assert count_text_tokens(stream.text()) == 3
    assert len(stream.text("reasoning_content").split()) == 8
    error = stream.events[-1]
    assert error["base_resp"] == {"status_code": 1027, "status_msg": "output new_sensitive"}
    assert error["error"]["message"].endswith("(1027)")
    assert error["request_id"] == stream.headers["trace-id"]
    assert not any(c["choices"] and c["choices"][0]["finish_reason"] for c in stream.chunks)


async def test_disconnect_after_breaks_the_stream(sim: Sim) -> None:
    stream = await sim.stream(body("hi\n@sim tokens=10 disconnect_after=4 reasoning=0"))
    assert stream.broken is not None
    assert count_text_tokens(stream.text()) == 4
    assert "[DONE]" not in stream.events


async def test_disconnect_without_a_response(sim: Sim) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await sim.post(body("hi\n@sim disconnect_after=0"))


async def test_pacing_is_roughly_honoured(make_sim: SimFactory) -> None:
    sim = await make_sim(SimConfig(ttft_ms=200))
    started = time.monotonic()
    await sim.stream(body("hi\n@sim tokens=2"))
    assert time.monotonic() - started >= 0.2
    fast = await make_sim()
    started = time.monotonic()
    await fast.post(body("hi\n@sim ttft_ms=100 tps=50 tokens=10 think=off"))  # 0.1 + 9/50 s
    assert time.monotonic() - started >= 0.28
    started = time.monotonic()
    await fast.stream(body("hi\n@sim tokens=200"))
    assert time.monotonic() - started < 2  # no pacing configured: no sleeps
