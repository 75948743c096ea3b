"""Non-streaming answers: shape, determinism, usage, reasoning, budgets, tool calls."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from runapi.simulator import SimConfig, count_prompt_tokens, count_text_tokens

from .conftest import SimFactory
from .helpers import Sim, body

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 5},
            },
            "required": ["city", "unit"],
        },
    },
}
CLOCK: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}


async def test_response_has_minimax_shape_and_headers(sim: Sim) -> None:
    reply = await sim.post(body("hi"))
    assert reply.status == 200
    data = reply.json()
    assert reply.headers["trace-id"] == data["id"]
    assert reply.headers["minimax-request-id"]
    assert reply.headers["x-mm-request-id"]
    assert data["object"] == "chat.completion"
    assert data["model"] == "MiniMax-M2.7"
    assert isinstance(data["created"], int)
    assert (data["input_sensitive"], data["output_sensitive"]) == (False, False)
    assert data["base_resp"] == {"status_code": 0, "status_msg": ""}
    choice = data["choices"][0]
    assert (choice["index"], choice["finish_reason"]) == (0, "stop")
    message = choice["message"]
    assert (message["role"], message["name"], message["audio_content"]) == ("assistant", "MiniMax AI", "")
    assert data["usage"]["total_characters"] == 0
    assert "prompt_tokens_details" not in data["usage"]


async def test_same_request_same_answer_and_seed_changes_it(make_sim: SimFactory) -> None:
    sim, other = await make_sim(), await make_sim(SimConfig(seed=1))
    first, second = (await sim.post(body("same"))).json(), (await sim.post(body("same"))).json()
    assert first["id"] != second["id"]
    assert first["choices"] == second["choices"]
    assert first["usage"] == second["usage"]
    assert (await other.post(body("same"))).json()["choices"] != first["choices"]
    assert (await sim.post(body("different"))).json()["choices"] != first["choices"]


async def test_usage_is_exact(sim: Sim) -> None:
    request = body("Count me, please.\n@sim tokens=7 reasoning=5", tools=[WEATHER])
    data = (await sim.post({**request, "reasoning_split": True})).json()
    usage = data["usage"]
    message = data["choices"][0]["message"]
    assert usage["prompt_tokens"] == count_prompt_tokens(request)
    assert count_text_tokens(message["content"]) == 7
    assert count_text_tokens(message["reasoning_content"]) == 5
    assert usage["completion_tokens"] == 12
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 5}
    assert usage["total_tokens"] == usage["prompt_tokens"] + 12


async def test_default_token_counts_come_from_config(make_sim: SimFactory) -> None:
    sim = await make_sim(SimConfig(default_tokens=3))
    usage = (await sim.post(body("hi"))).json()["usage"]
    assert usage["completion_tokens"] == 3 + 8


async def test_reasoning_split_vs_inline_think(sim: Sim) -> None:
    prompt = "why?\n@sim tokens=4 reasoning=3"
    split = (await sim.post(body(prompt, reasoning_split=True))).json()["choices"][0]["message"]
    inline = (await sim.post(body(prompt))).json()["choices"][0]["message"]
    reasoning = split["reasoning_content"]
    assert split["reasoning_details"] == [
        {
            "type": "reasoning.text",
            "id": "reasoning-text-1",
            "format": "MiniMax-response-v1",
            "index": 0,
            "text": reasoning,
        }
    ]
    assert "<think>" not in split["content"]
    assert "reasoning_content" not in inline
    assert inline["content"] == f"<think>\n{reasoning}\n</think>\n\n{split['content']}"


async def test_thinking_switches(sim: Sim) -> None:
    def message(data: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = data["choices"][0]["message"]
        return result

    off = (await sim.post(body("hi\n@sim think=off tokens=2"))).json()
    assert "<think>" not in message(off)["content"]
    assert off["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    disabled = {"thinking": {"type": "disabled"}}
    m3 = (await sim.post(body("hi", model="MiniMax-M3", **disabled))).json()
    assert "<think>" not in message(m3)["content"]
    m2 = (await sim.post(body("hi", model="MiniMax-M2.5", **disabled))).json()
    assert message(m2)["content"].startswith("<think>\n")  # M2.x cannot stop thinking
    none = (await sim.post(body("hi\n@sim reasoning=0", reasoning_split=True))).json()
    assert "reasoning_content" not in message(none)


async def test_max_tokens_cuts_content_with_length(sim: Sim) -> None:
    data = (await sim.post(body("hi\n@sim tokens=20 reasoning=4", max_tokens=10))).json()
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 10
    assert count_text_tokens(data["choices"][0]["message"]["content"].split("</think>")[1]) == 6


async def test_max_completion_tokens_wins_over_max_tokens(sim: Sim) -> None:
    data = (
        await sim.post(body("hi\n@sim tokens=20 reasoning=0", max_tokens=3, max_completion_tokens=5))
    ).json()
    assert data["usage"]["completion_tokens"] == 5


async def test_budget_spent_in_reasoning_leaves_think_open(sim: Sim) -> None:
    data = (await sim.post(body("hi\n@sim tokens=5 reasoning=8", max_tokens=4))).json()
    content = data["choices"][0]["message"]["content"]
    assert content.startswith("<think>\n")
    assert "</think>" not in content
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] == 4


async def test_cached_tokens_are_reported_and_capped(sim: Sim) -> None:
    usage = (await sim.post(body("hi\n@sim cached=5"))).json()["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 5}
    usage = (await sim.post(body("hi\n@sim cached=100000"))).json()["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == usage["prompt_tokens"]


async def test_content_filter(sim: Sim) -> None:
    data = (await sim.post(body("hi\n@sim finish=content_filter tokens=10 think=off"))).json()
    assert data["choices"][0]["finish_reason"] == "content_filter"
    assert data["output_sensitive"] is True
    assert count_text_tokens(data["choices"][0]["message"]["content"]) == 5
    assert data["usage"]["completion_tokens"] == 5


async def test_tool_call_arguments_match_the_schema(sim: Sim) -> None:
    request = body("weather?\n@sim tool=get_weather", tools=[WEATHER, CLOCK], reasoning_split=True)
    data = (await sim.post(request)).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == ""
    assert choice["message"]["reasoning_content"]
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert call["id"].startswith("call_function_")
    assert call["id"].endswith("_1")
    assert len(call["id"].split("_")[2]) == 10
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER["function"]["parameters"])
    assert data["usage"]["completion_tokens"] == 8 + count_text_tokens(call["function"]["arguments"])


async def test_parallel_tool_calls(sim: Sim) -> None:
    request = body("both\n@sim tool=get_weather,get_time", tools=[WEATHER, CLOCK])
    calls = (await sim.post(request)).json()["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert [c["id"][-2:] for c in calls] == ["_1", "_2"]
    assert calls[0]["id"][:-2] == calls[1]["id"][:-2]


async def test_tool_results_end_the_agent_loop(sim: Sim) -> None:
    first = (await sim.post(body("weather?\n@sim tool=get_weather", tools=[WEATHER]))).json()
    assistant = first["choices"][0]["message"]
    call = assistant["tool_calls"][0]
    follow_up = {
        "model": "MiniMax-M2.7",
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "weather?\n@sim tool=get_weather"},
            {"role": "assistant", "content": assistant["content"], "tool_calls": assistant["tool_calls"]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        ],
    }
    second = (await sim.post(follow_up)).json()
    assert second["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in second["choices"][0]["message"]
    assert second["usage"]["prompt_tokens"] == count_prompt_tokens(follow_up)


async def test_tool_choice_none_suppresses_calls(sim: Sim) -> None:
    request = body("weather?\n@sim tool=get_weather", tools=[WEATHER], tool_choice="none")
    assert (await sim.post(request)).json()["choices"][0]["finish_reason"] == "stop"


async def test_models_and_health(sim: Sim) -> None:
    models = (await sim.get("/v1/models")).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [
        "MiniMax-M2",
        "MiniMax-M2.1",
        "MiniMax-M2.1-highspeed",
        "MiniMax-M2.5",
        "MiniMax-M2.5-highspeed",
        "MiniMax-M2.7",
        "MiniMax-M2.7-highspeed",
        "MiniMax-M3",
    ]
    assert {m["owned_by"] for m in models["data"]} == {"minimax"}
    assert next(m for m in models["data"] if m["id"] == "MiniMax-M2.7")["created"] == 1773799200
    assert (await sim.get("/v1/models", headers={})).status == 401
    assert (await sim.get("/health", headers={})).status == 200
