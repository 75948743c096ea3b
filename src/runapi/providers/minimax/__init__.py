"""The MiniMax adapter: MiniMax's OpenAI-compatible endpoint (protocols.md §5).

Split by concern: `request` (body quirks), `errors` (code table); the wire types, SSE parsing and
chunk translation are the shared `openai_wire` ones.
"""

from __future__ import annotations

from runapi.providers.base import Provider
from runapi.providers.http import build_upstream_client
from runapi.providers.minimax.errors import MiniMaxErrorMapper
from runapi.providers.minimax.request import MiniMaxRequestBuilder
from runapi.providers.openai_wire import ChatCompletionsProvider
from runapi.providers.registry import register_kind
from runapi.settings import Settings, UpstreamSettings

DEFAULT_BASE_URL = "https://api.minimax.io/v1"
#: MiniMax's response headers carry its request id; it equals the body `id` (§5.5).
ID_HEADERS = ("trace-id", "x-mm-request-id")


def upstream_headers(upstream: UpstreamSettings) -> dict[str, str]:
    headers = {"authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
    headers.update(upstream.extra_headers)
    return headers


@register_kind("minimax")
def minimax_provider(name: str, upstream: UpstreamSettings, settings: Settings) -> Provider:
    split = True if upstream.reasoning_split is None else upstream.reasoning_split
    client = build_upstream_client(
        upstream.base_url or DEFAULT_BASE_URL, upstream, upstream_headers(upstream)
    )
    return ChatCompletionsProvider(
        name,
        client=client,
        builder=MiniMaxRequestBuilder(
            reasoning_split=split, forward_reasoning_effort=upstream.forward_reasoning_effort
        ),
        errors=MiniMaxErrorMapper(name),
        think_mode=upstream.think_tags or "auto",
        tool_tags=upstream.tool_call_tags is True,  # MiniMax's API parses them itself
        enforce_stop=True,
        id_headers=ID_HEADERS,
    )


__all__ = ["DEFAULT_BASE_URL", "MiniMaxErrorMapper", "MiniMaxRequestBuilder", "minimax_provider"]
