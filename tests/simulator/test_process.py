"""``python -m runapi.simulator`` as the integration tests start it: a real process."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp


async def test_module_entry_point_binds_port_zero_and_serves() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runapi.simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--ttft-ms",
        "1",
        "--api-key",
        "k",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode()
        match = re.fullmatch(r"simulator listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        assert int(match[2]) > 0
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as session:
            async with session.get(f"{match[1]}/health") as response:
                assert response.status == 200
            payload = {"model": "MiniMax-M2", "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(f"{match[1]}/v1/chat/completions", json=payload) as response:
                assert response.status == 200
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
