"""The adapter for any OpenAI-compatible server (vLLM, llama.cpp's server, SGLang, ...).

The shared Chat Completions mapping without MiniMax's quirks: `stop`, `seed`, `tool_choice` and
`response_format` go upstream as given (the gateway still enforces `stop` itself, so a server that
ignores it is covered), earlier reasoning goes back as `reasoning_content`, reasoning is read from
`reasoning_content` or `reasoning`, and inline `<think>` tags are split off when the content opens
with one (`think_tags` in the upstream's settings changes that), and a self-hosted MiniMax model's
raw `<minimax:tool_call>` blocks become tool calls (`tool_call_tags = false` turns that off).
"""

from __future__ import annotations

from runapi.providers.base import Provider
from runapi.providers.http import build_upstream_client
from runapi.providers.openai_wire import ChatCompletionsProvider, ErrorMapper, RequestBuilder
from runapi.providers.registry import register_kind
from runapi.settings import Settings, UpstreamSettings


@register_kind("openai_compatible")
def openai_compatible_provider(name: str, upstream: UpstreamSettings, settings: Settings) -> Provider:
    if not upstream.base_url:
        raise ValueError(f"upstream '{name}' (openai_compatible) needs a base_url")
    headers = {"authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
    headers.update(upstream.extra_headers)
    return ChatCompletionsProvider(
        name,
        client=build_upstream_client(upstream.base_url, upstream, headers),
        builder=RequestBuilder(reasoning_split=True if upstream.reasoning_split else None),
        errors=ErrorMapper(name),
        think_mode=upstream.think_tags or "auto",
        tool_tags=upstream.tool_call_tags is not False,
        enforce_stop=True,
        id_headers=("x-request-id",),
    )


__all__ = ["openai_compatible_provider"]
