"""The embedded local model: a GGUF served in-process by llama.cpp, the offline default.

Modules: `model_file` (where the weights are), `prompt` (chat template and tokenizer),
`constraints` (JSON / tool-call grammars), `text_stream` (UTF-8 and stop strings),
`generation` (the decode loop), `runtime` (worker threads and the bounded queue), `provider`.
llama_cpp is imported only when the provider starts, so runapi runs without it.
"""

from runapi.providers.local.provider import LocalProvider, create_local_provider

__all__ = ["LocalProvider", "create_local_provider"]
