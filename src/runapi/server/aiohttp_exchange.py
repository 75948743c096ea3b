"""`Exchange` over an aiohttp.web request: the generation routes on aiohttp's own server."""

from __future__ import annotations

import asyncio

from aiohttp import web
from multidict import CIMultiDictProxy

from runapi.errors import InvalidRequest, PayloadTooLarge
from runapi.server.exchange import SSE_CONTENT_TYPE, Answer, Reply


class AiohttpExchange:
    __slots__ = ("request", "response")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.request.headers

    @property
    def stream_started(self) -> bool:
        return self.response is not None

    async def read_body(self, limit: int) -> bytes:
        request = self.request
        length = request.content_length
        if length is not None and length > limit:
            raise PayloadTooLarge(f"Request body of {length} bytes exceeds the limit of {limit} bytes.")
        if length is not None:
            try:
                return await request.content.readexactly(length)
            except asyncio.IncompleteReadError as exc:
                raise InvalidRequest(
                    f"The request body ended after {len(exc.partial)} of {length} bytes."
                ) from exc
        chunks: list[bytes] = []  # chunked upload: count as it comes
        size = 0
        async for part in request.content.iter_any():
            size += len(part)
            if size > limit:
                raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
            chunks.append(part)
        return b"".join(chunks)

    async def start_stream(self, status: int, headers: dict[str, str]) -> None:
        self.response = web.StreamResponse(
            status=status, headers={**headers, "Content-Type": SSE_CONTENT_TYPE}
        )

    async def write(self, data: bytes) -> None:
        response = self.response
        assert response is not None
        try:
            if not response.prepared:
                await response.prepare(self.request)
            await response.write(data)
        except RuntimeError as exc:  # aiohttp: "Cannot write to closing transport"
            raise ConnectionResetError(str(exc)) from exc

    async def end_stream(self) -> None:
        response = self.response
        assert response is not None
        try:
            if not response.prepared:
                await response.prepare(self.request)
            await response.write_eof()
        except RuntimeError as exc:
            raise ConnectionResetError(str(exc)) from exc

    def answer(self, answer: Answer) -> web.StreamResponse:
        """What the aiohttp handler returns for the pipeline's answer."""
        if isinstance(answer, Reply):
            # As a header, not `content_type=`: aiohttp refuses a charset parameter there.
            headers = {**answer.headers, "Content-Type": answer.content_type}
            return web.Response(body=answer.body, status=answer.status, headers=headers)
        assert self.response is not None, "STREAMED without a stream"
        return self.response


__all__ = ["AiohttpExchange"]
