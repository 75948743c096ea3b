"""Upstream HTTP clients: one interface, two implementations, picked by URL.

Plain `http://` upstreams (the simulator, vLLM or llama.cpp on loopback or a private network) get
the lean httptools pool; `https://` upstreams, and http ones that an `HTTP_PROXY` applies to, get
aiohttp, which brings TLS and proxy support.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass

from runapi.providers.http.aiohttp_client import AiohttpUpstreamClient
from runapi.providers.http.base import ERROR_BODY_LIMIT, UpstreamClient, UpstreamResponse
from runapi.providers.http.pool import PooledHttp1Client
from runapi.settings import UpstreamSettings

__all__ = [
    "ERROR_BODY_LIMIT",
    "AiohttpUpstreamClient",
    "PooledHttp1Client",
    "UpstreamClient",
    "UpstreamResponse",
    "build_upstream_client",
]


def _proxied(url: str) -> bool:
    proxies = getproxies_environment()
    if "http" not in proxies and "all" not in proxies:
        return False
    host = urlsplit(url).hostname or ""
    return not proxy_bypass(host)


def build_upstream_client(
    base_url: str, upstream: UpstreamSettings, headers: Mapping[str, str]
) -> UpstreamClient:
    """The client for one upstream; `headers` (auth, extras) go on every request."""
    cls: type[PooledHttp1Client] | type[AiohttpUpstreamClient] = AiohttpUpstreamClient
    if base_url.startswith("http://") and not _proxied(base_url):
        cls = PooledHttp1Client
    return cls(
        base_url,
        connect_timeout=upstream.connect_timeout,
        read_timeout=upstream.read_timeout,
        max_connections=upstream.max_connections,
        default_headers=headers,
    )
