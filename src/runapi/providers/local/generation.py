"""One generation on one model instance, run inside that instance's worker thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runapi.canonical import (
    Event,
    Finished,
    FinishReason,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
)
from runapi.providers.local.text_stream import TextAssembler

if TYPE_CHECKING:
    from llama_cpp import Llama

PROMPT_BATCH = 64

# llama.cpp reads this seed value as "pick a random seed".
RANDOM_SEED = 0xFFFFFFFF

# Loading or freeing two models at the same time from different threads kills the process
# (seen with two instances loading in parallel), so model lifecycle calls take turns.
MODEL_LIFECYCLE_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class ToolCallTarget:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """Everything a worker needs, decided on the event loop before the job is queued."""

    prompt_tokens: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None = None
    stop: tuple[str, ...] = ()
    grammar: str | None = None  # GBNF
    tool_call: ToolCallTarget | None = None  # the output is this call's arguments


class ModelInstance:
    """A loaded model; used by exactly one worker thread."""

    def __init__(self, llm: Llama) -> None:
        import llama_cpp

        self.llm = llm
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._is_eog = llama_cpp.llama_vocab_is_eog

    def is_end(self, token: int) -> bool:
        """End of generation: EOS, end-of-turn and the template's other end tokens."""
        return bool(self._is_eog(self._vocab, token))

    def close(self) -> None:
        with MODEL_LIFECYCLE_LOCK:
            self.llm.close()


def load_llama(path: Path, *, n_ctx: int, n_threads: int) -> Llama:
    from llama_cpp import Llama

    with MODEL_LIFECYCLE_LOCK:
        llm: Llama = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
    return llm


def generate_events(
    instance: ModelInstance, plan: GenerationPlan, cancelled: threading.Event
) -> Iterator[Event]:
    """Decode token by token, yielding canonical events; returns promptly once `cancelled` is set.

    Usage counts token ids: the prompt's, and every generated token except the end-of-turn token
    (which produces no text), so split multi-byte characters can't skew it.
    """
    llm = instance.llm
    # A fresh KV cache per request: reusing a cached prefix evaluates the prompt in different
    # batches, which can change greedy output, and identical requests must give identical text.
    llm.reset()  # type: ignore[no-untyped-call]  # llama_cpp leaves it unannotated
    llm.set_seed(RANDOM_SEED if plan.seed is None else plan.seed % RANDOM_SEED)
    prompt = plan.prompt_tokens
    # Evaluate the prompt in small batches ourselves so a cancel lands between them (a 64-token
    # batch takes well under a second even on a busy CPU, and larger ones were no faster);
    # `generate` then finds the whole prompt cached and starts sampling at once.
    for start in range(0, len(prompt), PROMPT_BATCH):
        if cancelled.is_set():
            return
        llm.eval(prompt[start : start + PROMPT_BATCH])

    grammar: Any = None
    if plan.grammar is not None:
        from llama_cpp.llama_grammar import LlamaGrammar

        grammar = LlamaGrammar.from_string(plan.grammar, verbose=False)
    tool = plan.tool_call
    assembler = TextAssembler(() if tool else plan.stop)
    if tool is not None:
        yield ToolCallStart(index=0, id=tool.id, name=tool.name)

    def delta(text: str) -> Event:
        return ToolCallDelta(index=0, arguments=text) if tool is not None else TextDelta(text)

    generated = 0
    reason: FinishReason = "length"
    steps = llm.generate(prompt, temp=plan.temperature, top_p=plan.top_p, grammar=grammar)
    try:
        for token in steps:
            if cancelled.is_set():
                return
            if instance.is_end(token):
                reason = "tool_calls" if tool is not None else "stop"
                break
            generated += 1
            text = assembler.feed(llm.detokenize([token]))
            if text:
                yield delta(text)
            if assembler.matched is not None:
                reason = "stop"
                break
            if generated >= plan.max_tokens:
                break
    finally:
        steps.close()
    tail = assembler.flush()
    if tail:
        yield delta(tail)
    yield Finished(reason, stop_sequence=assembler.matched)
    yield UsageReport(Usage(input_tokens=len(prompt), output_tokens=generated, source="upstream"))
