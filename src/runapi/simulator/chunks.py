"""Turning a :class:`Completion` into the SSE frames of a MiniMax stream.

All frames are built before the first byte is sent: with no pacing the whole stream is one
write, and with pacing the delivery loop does no JSON work between sleeps.

Frame order: reasoning chunks, content chunks, tool-call fragments, the finish chunk, the
usage chunk (``include_usage`` only), ``[DONE]`` (unless omitted). ``role`` rides on the first
frame only, and content and reasoning never share a delta.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from .generation import CLOSE_THINK, Completion
from .render import BASE_RESP_OK, reasoning_detail

__all__ = ["DONE", "Frame", "StreamFrames", "build_frames"]

DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes
    tokens: int
    """Output tokens this frame delivers; pacing schedules on the running total."""


@dataclass(frozen=True, slots=True)
class StreamFrames:
    body: tuple[Frame, ...]
    """Reasoning, content and tool-call frames."""
    finish: bytes
    usage: bytes | None
    cut: int | None
    """With ``error_after``/``disconnect_after``: how many body frames go out before the break."""


@dataclass(slots=True)
class _Delta:
    delta: dict[str, Any]
    tokens: int
    content_tokens: int


def build_frames(
    completion: Completion,
    *,
    response_id: str,
    created: int,
    model: str,
    reasoning_split: bool,
    chunk_tokens: int,
    include_usage: bool,
    break_after: int | None,
) -> StreamFrames:
    """Build every frame. ``break_after`` is the number of content tokens to deliver before an
    in-stream error or a disconnect; chunking is aligned so the break falls exactly there."""
    reasoning = _reasoning_deltas(completion, reasoning_split, chunk_tokens)
    content = _content_deltas(
        completion, reasoning_split, chunk_tokens, break_after, has_reasoning=bool(reasoning)
    )
    tools = _tool_deltas(completion)
    deltas = reasoning + content + tools

    envelope = _Envelope(response_id, created, model)
    first = {"role": "assistant", "name": "MiniMax AI", "audio_content": ""}
    if deltas:
        deltas[0].delta = {**first, **deltas[0].delta}
        finish_delta: dict[str, Any] = {}
    else:
        finish_delta = first
    body = tuple(Frame(envelope.chunk(d.delta), d.tokens) for d in deltas)
    finish = envelope.chunk(finish_delta, completion.finish_reason, sensitive=completion.output_sensitive)
    usage = envelope.usage_chunk(completion.usage()) if include_usage else None

    cut = None
    if break_after is not None:
        cut = len(reasoning) + _frames_for(content, break_after)
    return StreamFrames(body=body, finish=finish, usage=usage, cut=cut)


def _frames_for(content: Sequence[_Delta], wanted: int) -> int:
    """How many content frames deliver ``wanted`` content tokens (all of them if there are fewer)."""
    if wanted == 0:
        return 0
    delivered = 0
    for i, delta in enumerate(content, start=1):
        delivered += delta.content_tokens
        if delivered >= wanted:
            return i
    return len(content)


def _groups(words: Sequence[str], size: int, boundary: int | None = None) -> list[Sequence[str]]:
    parts = [words] if boundary is None else [words[:boundary], words[boundary:]]
    return [part[i : i + size] for part in parts for i in range(0, len(part), size)]


def _texts(groups: list[Sequence[str]]) -> list[str]:
    # Each word carries its leading space except the very first, so the pieces concatenate
    # to exactly the non-stream text.
    return [("" if i == 0 else " ") + " ".join(g) for i, g in enumerate(groups)]


def _reasoning_deltas(completion: Completion, reasoning_split: bool, size: int) -> list[_Delta]:
    groups = _groups(completion.reasoning, size)
    texts = _texts(groups)
    if reasoning_split:
        return [
            _Delta(
                {"reasoning_content": t, "reasoning_details": [reasoning_detail(t, first=i == 0)]}, len(g), 0
            )
            for i, (t, g) in enumerate(zip(texts, groups, strict=True))
        ]
    if not texts:
        return []
    texts[0] = "<think>\n" + texts[0]
    if completion.reasoning_closed:
        texts[-1] += CLOSE_THINK[: completion.tag_split]
    return [_Delta({"content": t}, len(g), 0) for t, g in zip(texts, groups, strict=True)]


def _content_deltas(
    completion: Completion, reasoning_split: bool, size: int, boundary: int | None, *, has_reasoning: bool
) -> list[_Delta]:
    groups = _groups(completion.content, size, boundary)
    groups = [g for g in groups if g]
    texts = _texts(groups)
    deltas = [_Delta({"content": t}, len(g), len(g)) for t, g in zip(texts, groups, strict=True)]
    if not reasoning_split and has_reasoning and completion.reasoning_closed:
        # The rest of the closing tag opens the content, or stands alone if there is none.
        tail = CLOSE_THINK[completion.tag_split :]
        if tail and deltas:
            deltas[0].delta["content"] = tail + deltas[0].delta["content"]
        elif tail:
            deltas.append(_Delta({"content": tail}, 0, 0))
    return deltas


def _tool_deltas(completion: Completion) -> list[_Delta]:
    deltas = []
    for index, call in enumerate(completion.tool_calls):
        head = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        deltas.append(_Delta({"tool_calls": [head]}, 0, 0))
        count = len(call.pieces)
        for j, piece in enumerate(call.pieces):
            # Spread the call's tokens over its fragments for pacing.
            tokens = call.tokens * (j + 1) // count - call.tokens * j // count
            deltas.append(
                _Delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, tokens, 0)
            )
    return deltas


class _Envelope:
    """The bytes around each delta, encoded once per stream."""

    def __init__(self, response_id: str, created: int, model: str) -> None:
        self._head = b"".join(
            (
                b'data: {"id":',
                _encode(response_id),
                b',"object":"chat.completion.chunk","created":',
                _encode(created),
                b',"model":',
                _encode(model),
            )
        )
        self._response_id, self._created, self._model = response_id, created, model

    def chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, *, sensitive: bool = False
    ) -> bytes:
        return b"".join(
            (
                self._head,
                b',"choices":[{"index":0,"delta":',
                _encode(delta),
                b',"finish_reason":',
                _encode(finish_reason),
                b'}],"usage":null,"input_sensitive":false,"output_sensitive":',
                b"true" if sensitive else b"false",
                b',"base_resp":{"status_code":0,"status_msg":""}}\n\n',
            )
        )

    def usage_chunk(self, usage: dict[str, Any]) -> bytes:
        chunk = {
            "id": self._response_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [],
            "usage": usage,
            "input_sensitive": False,
            "output_sensitive": False,
            "base_resp": BASE_RESP_OK,
        }
        return b"data: " + _encode(chunk) + b"\n\n"
