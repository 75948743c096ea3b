"""The Chat Completions wire shared by every OpenAI-shaped upstream (MiniMax, vLLM, llama.cpp).

- `wire`: request and chunk types;
- `request`: canonical request → upstream body (`RequestBuilder`, with per-dialect hooks);
- `sse`, `stream`: SSE framing and chunk → canonical event translation;
- `errors`: upstream failure → our error tree (`ErrorMapper`, with per-dialect tables);
- `provider`: the `Provider` that ties them to an `UpstreamClient`.
"""

from runapi.providers.openai_wire.errors import ErrorInfo, ErrorMapper
from runapi.providers.openai_wire.provider import CHAT_PATH, ChatCompletionsProvider
from runapi.providers.openai_wire.request import ReasoningFields, RequestBuilder
from runapi.providers.openai_wire.sse import SSEDecoder
from runapi.providers.openai_wire.stream import StreamTranslator

__all__ = [
    "CHAT_PATH",
    "ChatCompletionsProvider",
    "ErrorInfo",
    "ErrorMapper",
    "ReasoningFields",
    "RequestBuilder",
    "SSEDecoder",
    "StreamTranslator",
]
