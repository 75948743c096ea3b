"""The baseline: a bare aiohttp.web pass-through that forwards bytes upstream with no parsing.

    python -m bench.passthrough --upstream http://127.0.0.1:9100 --port 0
    # prints: passthrough listening on http://127.0.0.1:PORT

No auth, no limits, no JSON: the request body and the response body are copied as bytes, and an
event stream is relayed chunk by chunk as it arrives. It is the floor any gateway built on the
same stack (aiohttp server + aiohttp client) can reach, like performance.md's baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket

import aiohttp
from aiohttp import web

_FORWARDED = ("Content-Type", "Authorization", "Accept")
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM: web.AppKey[str] = web.AppKey("upstream", str)


async def forward(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {name: request.headers[name] for name in _FORWARDED if name in request.headers}
    url = request.app[UPSTREAM] + request.path_qs
    async with request.app[SESSION].request(request.method, url, data=body, headers=headers) as upstream:
        content_type = upstream.headers.get("Content-Type", "application/octet-stream")
        if content_type.startswith("text/event-stream"):
            response = web.StreamResponse(
                status=upstream.status, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
            )
            await response.prepare(request)
            # A client may hang up as soon as it has read `[DONE]`: nothing left to deliver then.
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response
        data = await upstream.read()
        return web.Response(body=data, status=upstream.status, headers={"Content-Type": content_type})


def build_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")

    async def open_session(app: web.Application) -> None:
        # limit=0: no pool cap, so thousands of concurrent streams each get a connection.
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        app[SESSION] = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout(total=600)
        )

    async def close_session(app: web.Application) -> None:
        await app[SESSION].close()

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(upstream: str, host: str, port: int) -> None:
    runner = web.AppRunner(build_app(upstream), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(8192)
    sock.setblocking(False)
    await web.SockSite(runner, sock).start()
    print(f"passthrough listening on http://{host}:{sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.passthrough")
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9100")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.upstream, args.host, args.port))


if __name__ == "__main__":
    main()
