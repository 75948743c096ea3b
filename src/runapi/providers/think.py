"""A streaming `<think>…</think>` splitter: content fragments in, (reasoning, text) fragments out.

Reasoning models served without a reasoning parser (MiniMax without `reasoning_split`, a vLLM
started without `--reasoning-parser`) put their reasoning inline at the start of `content`. The tags
can be split across chunks at any byte, so the parser holds back only what could still turn out to
be a tag, and never anything else.

Modes (protocols.md §5.4):
- `auto`: content is reasoning up to `</think>` only when it *starts* with `<think>` (leading
  whitespace allowed); otherwise all of it is text. Safe for any model.
- `always`: everything before `</think>` is reasoning, with or without the opening tag. Right for
  templates that open the tag themselves, so the model writes only the closing one (vLLM's
  `minimax_m2` parser does this).
- `never`: no parsing; everything is text.

Newlines right after `<think>` and right after `</think>` are dropped: the model writes
`<think>\\n…\\n</think>\\n\\n` and the blank line is template noise, not answer text.
"""

from __future__ import annotations

from typing import Literal

ThinkMode = Literal["auto", "always", "never"]

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
_NEWLINES = "\r\n"

# States
_DECIDE = 0  # waiting to see whether the content opens with <think>
_REASONING_START = 1  # inside reasoning, dropping the newlines that follow <think>
_REASONING = 2
_AFTER_CLOSE = 3  # after </think>, dropping the blank line
_TEXT = 4


def held_tag_prefix(buf: str, tag: str) -> int:
    """Length of the longest suffix of `buf` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(buf)), 0, -1):
        if buf.endswith(tag[:size]):
            return size
    return 0


class ThinkParser:
    """Feed content fragments in order; each call returns the `(reasoning, text)` it can release.

    Reasoning only ever precedes text, so a pair is unambiguous. Call `finish()` once at the end to
    release whatever was held back.
    """

    __slots__ = ("_buf", "_mode", "_state")

    def __init__(self, mode: ThinkMode = "auto") -> None:
        self._mode = mode
        self._state = _TEXT if mode == "never" else _DECIDE
        self._buf = ""

    @property
    def in_reasoning(self) -> bool:
        return self._state in (_REASONING_START, _REASONING)

    def feed(self, fragment: str) -> tuple[str, str]:
        if self._state == _TEXT:
            return "", fragment
        return self._run(self._buf + fragment)

    def finish(self) -> tuple[str, str]:
        buf, self._buf = self._buf, ""
        state = self._state
        self._state = _TEXT
        if state == _DECIDE:
            # Never saw a complete `<think>`: in `always` mode the template opened it for us.
            if self._mode == "always":
                return buf.lstrip(_NEWLINES), ""
            return "", buf
        if state == _REASONING:
            return buf, ""
        return "", ""

    def _run(self, buf: str) -> tuple[str, str]:
        reasoning = ""
        self._buf = ""
        while True:
            state = self._state
            if state == _DECIDE:
                head = buf.lstrip()
                if len(head) < len(OPEN_TAG) and OPEN_TAG.startswith(head):
                    self._buf = buf  # still could be `<think>` (or only whitespace so far)
                    return reasoning, ""
                if head.startswith(OPEN_TAG):
                    buf = head[len(OPEN_TAG) :]
                    self._state = _REASONING_START
                elif self._mode == "always":
                    self._state = _REASONING_START
                else:
                    self._state = _TEXT
                    return reasoning, buf
            elif state == _REASONING_START:
                buf = buf.lstrip(_NEWLINES)
                if not buf:
                    return reasoning, ""
                self._state = _REASONING
            elif state == _REASONING:
                end = buf.find(CLOSE_TAG)
                if end < 0:
                    held = held_tag_prefix(buf, CLOSE_TAG)
                    if held:
                        self._buf = buf[-held:]
                        buf = buf[:-held]
                    return reasoning + buf, ""
                reasoning += buf[:end]
                buf = buf[end + len(CLOSE_TAG) :]
                self._state = _AFTER_CLOSE
            elif state == _AFTER_CLOSE:
                buf = buf.lstrip(_NEWLINES)
                if not buf:
                    return reasoning, ""
                self._state = _TEXT
            else:
                return reasoning, buf
