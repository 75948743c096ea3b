"""Bad input never becomes a 500: any body, however mangled, is either decoded into a request the
rest of the path can carry (token estimate, upstream body for MiniMax and for an OpenAI-compatible
server), or refused with a 4xx in the caller's own error shape.

Bodies start from a valid request of each surface and have one part replaced with arbitrary JSON,
at the top level or inside a message, a content block or a tool: the places where a decoder meets
values its types did not expect.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runapi.canonical import ChatRequest
from runapi.canonical.codec import Surface
from runapi.canonical.estimate import estimate_input_tokens
from runapi.catalog import ModelEntry, load_catalog
from runapi.errors import RunapiError
from runapi.providers.minimax.request import MiniMaxRequestBuilder
from runapi.providers.openai_wire.request import RequestBuilder
from runapi.surfaces.anthropic_messages import AnthropicMessagesSurface
from runapi.surfaces.openai_chat import ChatCompletionsSurface
from runapi.surfaces.openai_responses import ResponsesSurface
from tests.jsonfuzz import json_values, mangled_json

KEY = b"fuzz-signing-key"
CATALOG = load_catalog()
MODELS = [CATALOG.resolve("MiniMax-M2.7"), CATALOG.resolve("MiniMax-M3")]
BUILDERS: list[RequestBuilder] = [MiniMaxRequestBuilder(), RequestBuilder(reasoning_split=True)]

TOOL = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}

CHAT: dict[str, Any] = {
    "model": "MiniMax-M2.7",
    "max_tokens": 64,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ],
    "tools": [{"type": "function", "function": TOOL}],
    "tool_choice": "auto",
    "stream": False,
    "temperature": 0.5,
    "stop": ["END"],
    "response_format": {"type": "text"},
    "reasoning_effort": "low",
}

MESSAGES: dict[str, Any] = {
    "model": "MiniMax-M2.7",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
        },
    ],
    "tools": [{"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["parameters"]}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "stop_sequences": ["END"],
    "temperature": 0.5,
}

RESPONSES: dict[str, Any] = {
    "model": "MiniMax-M2.7",
    "max_output_tokens": 64,
    "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ],
    "tools": [{"type": "function", **TOOL}],
    "tool_choice": "auto",
    "reasoning": {"effort": "low"},
    "text": {"format": {"type": "text"}},
    "store": False,
}

CASES: list[tuple[Surface, dict[str, Any]]] = [
    (ChatCompletionsSurface(), CHAT),
    (AnthropicMessagesSurface(KEY), MESSAGES),
    (ResponsesSurface(KEY), RESPONSES),
]


@st.composite
def mangled(draw: st.DrawFn, cases: tuple[int, ...] = tuple(range(len(CASES)))) -> tuple[int, bytes]:
    case = draw(st.sampled_from(cases))
    document = CASES[case][1]
    body = draw(mangled_json(document))
    return case, msgspec.json.encode(body)


def _carried_or_refused(surface: Surface, body: bytes) -> str:
    """ "refused" (a 4xx in the surface's shape) or "carried" (through every upstream builder)."""
    refusal: RunapiError | None = None
    try:
        decoded = surface.decode(body)
    except RunapiError as exc:
        refusal = exc
    if refusal is not None:
        status, rendered, _ = surface.render_error(refusal, "req_fuzz")
        assert 400 <= status < 500, (status, refusal.message)
        error = msgspec.json.decode(rendered)
        if surface.endpoint == "messages":
            assert error["type"] == "error"
        assert error["error"]["type"]
        assert error["error"]["message"]
        return "refused"
    request = decoded.request
    assert estimate_input_tokens(request) >= 0
    for model in MODELS:
        for builder in BUILDERS:
            wire = _build(builder, request, model)
            if isinstance(wire, RunapiError):  # a combination a model refuses: a 4xx as well
                assert 400 <= wire.status < 500, wire.message
            else:
                assert msgspec.json.decode(wire)["messages"]
    return "carried"


def _build(builder: RequestBuilder, request: ChatRequest, model: ModelEntry) -> bytes | RunapiError:
    try:
        return builder.build(request, model)
    except RunapiError as exc:
        return exc


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mangled())
def test_a_mangled_body_is_carried_or_refused_with_a_4xx(case: tuple[int, bytes]) -> None:
    index, body = case
    _carried_or_refused(CASES[index][0], body)


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(CASES) - 1),
    body=st.binary(max_size=64) | json_values.map(msgspec.json.encode),
)
def test_any_bytes_or_json_at_all_are_refused_or_carried(index: int, body: bytes) -> None:
    _carried_or_refused(CASES[index][0], body)


def test_the_unmangled_bases_are_valid_requests() -> None:
    for surface, document in CASES:
        decoded = surface.decode(msgspec.json.encode(document))
        assert decoded.request.messages
        assert decoded.request.tools


@settings(max_examples=300, deadline=None)
@given(case=mangled(cases=(1, 2)))  # Chat Completions has no counting route
def test_the_token_counting_routes_refuse_or_count_the_same_bodies(case: tuple[int, bytes]) -> None:
    index, body = case
    surface = CASES[index][0]
    if isinstance(surface, AnthropicMessagesSurface):
        count = surface.decode_count_tokens
    else:
        assert isinstance(surface, ResponsesSurface)
        count = surface.decode_input_tokens
    refusal: RunapiError | None = None
    try:
        request = count(body)
    except RunapiError as exc:
        refusal = exc
    if refusal is not None:
        assert 400 <= surface.render_error(refusal, "req_fuzz")[0] < 500, refusal.message
    else:
        assert estimate_input_tokens(request) >= 0
