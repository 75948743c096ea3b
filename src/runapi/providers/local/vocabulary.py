"""The model's tokenizer and metadata, loaded without weights or a context.

`Llama(vocab_only=True)` still builds an inference context (and warns about it on stderr), so
this goes one level down to llama.cpp's C API, which llama_cpp exposes as plain functions.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

from runapi.providers.local.generation import MODEL_LIFECYCLE_LOCK


class Vocabulary:
    """Tokenizer + GGUF metadata. Not thread-safe: one thread owns it."""

    def __init__(self, path: Path) -> None:
        import llama_cpp

        self._lib: Any = llama_cpp
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        with MODEL_LIFECYCLE_LOCK:
            model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not model:
            raise ValueError(f"llama.cpp could not read the vocabulary of {path}")
        self._model: Any = model
        self._vocab: Any = llama_cpp.llama_model_get_vocab(model)

    def metadata(self, key: str) -> str | None:
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            n = int(self._lib.llama_model_meta_val_str(self._model, key.encode("utf-8"), buf, size))
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1  # chat templates can be long: retry with the exact size

    def context_length(self) -> int | None:
        """The context the model was trained for, from `<architecture>.context_length`."""
        arch = self.metadata("general.architecture")
        value = self.metadata(f"{arch}.context_length") if arch else None
        return int(value) if value and value.isdigit() else None

    def token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(self._lib.llama_vocab_get_text(self._vocab, token)).decode("utf-8", errors="replace")

    @property
    def bos(self) -> int:
        return int(self._lib.llama_vocab_bos(self._vocab))

    @property
    def eos(self) -> int:
        return int(self._lib.llama_vocab_eos(self._vocab))

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text`, special tokens parsed, no BOS added (chat templates write it)."""
        data = text.encode("utf-8")
        capacity = len(data) + 8  # a token covers at least one byte, plus room for specials
        tokens = (self._lib.llama_token * capacity)()
        n = int(self._lib.llama_tokenize(self._vocab, data, len(data), tokens, capacity, False, True))
        if n < 0:  # -n is the size needed
            capacity = -n
            tokens = (self._lib.llama_token * capacity)()
            n = int(self._lib.llama_tokenize(self._vocab, data, len(data), tokens, capacity, False, True))
            if n < 0:
                raise RuntimeError(f"llama.cpp failed to tokenize a {len(data)}-byte prompt")
        return list(tokens[:n])

    def accepts_grammar(self, grammar: str) -> bool:
        """Whether llama.cpp parses this GBNF. A grammar it rejects crashes the process once it
        reaches a sampler, so every grammar is checked here before a worker sees it."""
        sampler = self._lib.llama_sampler_init_grammar(self._vocab, grammar.encode("utf-8"), b"root")
        if not sampler:
            return False
        self._lib.llama_sampler_free(sampler)
        return True

    def close(self) -> None:
        if self._model is not None:
            with MODEL_LIFECYCLE_LOCK:
                self._lib.llama_model_free(self._model)
            self._model = None
