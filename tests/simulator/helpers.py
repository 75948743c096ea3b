"""Request builders and a minimal SSE reader for the simulator tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

AUTH = {"Authorization": "Bearer test-key"}


def body(prompt: str = "Hello there", *, model: str = "MiniMax-M2.7", **extra: Any) -> dict[str, Any]:
    """A chat-completions body with one user message."""
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.raw)


@dataclass
class Stream:
    status: int
    headers: dict[str, str]
    events: list[Any] = field(default_factory=list)
    """Decoded ``data:`` payloads; ``"[DONE]"`` stays a string."""
    broken: BaseException | None = None
    """The exception the client saw if the body was cut short."""

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [e for e in self.events if isinstance(e, dict) and "choices" in e]

    @property
    def deltas(self) -> list[dict[str, Any]]:
        return [c["choices"][0]["delta"] for c in self.chunks if c["choices"]]

    def text(self, key: str = "content") -> str:
        return "".join(d.get(key) or "" for d in self.deltas)


@dataclass
class Sim:
    base_url: str
    session: aiohttp.ClientSession

    async def post(self, payload: Any, *, headers: dict[str, str] | None = None) -> Reply:
        data = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
        async with self.session.post(
            f"{self.base_url}/v1/chat/completions", data=data, headers=AUTH if headers is None else headers
        ) as response:
            return Reply(response.status, dict(response.headers), await response.read())

    async def stream(self, payload: dict[str, Any]) -> Stream:
        payload = {**payload, "stream": True}
        async with self.session.post(
            f"{self.base_url}/v1/chat/completions", data=msgspec.json.encode(payload), headers=AUTH
        ) as response:
            result = Stream(response.status, dict(response.headers))
            try:
                async for line in response.content:
                    if line.startswith(b"data: "):
                        data = line[6:].strip()
                        result.events.append("[DONE]" if data == b"[DONE]" else msgspec.json.decode(data))
            except aiohttp.ClientPayloadError as exc:
                result.broken = exc
            return result

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> Reply:
        async with self.session.get(
            f"{self.base_url}{path}", headers=AUTH if headers is None else headers
        ) as r:
            return Reply(r.status, dict(r.headers), await r.read())
