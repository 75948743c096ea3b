"""`UpstreamClient` on aiohttp: TLS, HTTP proxies from the environment, the general case."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from yarl import URL

from runapi.errors import RunapiError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from runapi.providers.http.base import DRAIN_SECONDS, UpstreamClient, UpstreamResponse


def transport_error(exc: BaseException, base_url: str) -> RunapiError:
    """Map an aiohttp/OS failure to our error tree: the one place transport errors are named."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return UpstreamError(f"TLS handshake with the upstream failed: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return UpstreamUnavailable(f"The upstream is unreachable: {exc}")
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout("The upstream did not answer in time.")
    return UpstreamError(
        f"The upstream connection failed mid-response: {type(exc).__name__}",
        code="upstream_disconnected",
    )


class AiohttpUpstreamClient(UpstreamClient):
    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        default_headers: Mapping[str, str],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        self._headers = dict(default_headers)
        self._session: aiohttp.ClientSession | None = None
        # Parsing a URL costs more than the rest of the request setup: do it once per path.
        self._urls: dict[str, URL] = {}

    async def start(self) -> None:
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers=self._headers,
            trust_env=True,  # HTTPS_PROXY / NO_PROXY
            raise_for_status=False,
        )

    async def post_json_stream(
        self, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> UpstreamResponse:
        if self._session is None:
            await self.start()
        assert self._session is not None
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path)
        try:
            resp = await self._session.post(url, data=body, headers=headers)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise transport_error(exc, self.base_url) from exc
        return _AiohttpResponse(resp, self.base_url)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AiohttpResponse(UpstreamResponse):
    __slots__ = ("_base_url", "_closed", "_eof", "_resp", "status")

    def __init__(self, resp: aiohttp.ClientResponse, base_url: str) -> None:
        self._resp = resp
        self._base_url = base_url
        self.status = resp.status
        self._eof = False
        self._closed = False

    def header(self, name: str) -> str | None:
        return self._resp.headers.get(name)

    def __aiter__(self) -> _AiohttpResponse:
        return self

    async def __anext__(self) -> bytes:
        if self._eof or self._closed:
            raise StopAsyncIteration
        try:
            data = await self._resp.content.readany()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise transport_error(exc, self._base_url) from exc
        if not data:
            self._eof = True
            raise StopAsyncIteration
        return data

    async def drain(self, seconds: float = DRAIN_SECONDS) -> None:
        if self._resp.content.at_eof():
            self._eof = True
            return
        await super().drain(seconds)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._eof:
            self._resp.release()
        else:
            # Half-read: close the socket so the upstream stops generating and the pool never
            # hands this connection out again.
            self._resp.close()
