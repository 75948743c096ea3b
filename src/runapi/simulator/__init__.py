"""A faithful fake of MiniMax's OpenAI-compatible chat API.

Users develop against it offline; runapi's integration tests and benchmarks use it as their only
upstream. It stands alone: nothing here imports from the rest of runapi.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``. Behaviour per
request is chosen with an ``@sim key=value ...`` line in the last user message (see
``README.md`` next to this file for the keys).

Tokenization rule (usage is exact, so billing can be tested against it)
-----------------------------------------------------------------------
A *token* is one match of the regex ``\\w+|[^\\w\\s]`` (Python ``re``, Unicode-aware): a run of
word characters, or one other non-space character. Separate pieces of text are counted
separately and summed.

``prompt_tokens = 3 + Σ messages (4 + T(message)) + Σ tools (10 + T(compact JSON of tool["function"]))``

where ``T(message)`` counts:

* the text of ``content``: the string, or the ``text`` of each ``{"type": "text"}`` part
  (image and other parts count 0);
* for assistant messages, ``content`` with every ``<think>…</think>`` span removed, and nothing
  of ``reasoning_content``/``reasoning_details`` (MiniMax does not bill replayed reasoning);
* for each ``tool_calls`` entry, ``function.name`` and ``function.arguments``;
* not the role, ``name`` or ``tool_call_id`` (the 4 per message covers framing).

The compact JSON of a tool is ``msgspec.json.encode(tool["function"])``: no spaces, UTF-8,
non-ASCII unescaped. The ``@sim`` line is ordinary prompt text and is counted.
:func:`count_prompt_tokens` computes exactly this.

``completion_tokens = reasoning_tokens + content_tokens + Σ tool calls T(arguments)``

* every generated reasoning or content token is one vocabulary word (pure ASCII letters), so
  the number of words is the number of tokens; the ``<think>``/``</think>`` tags are free;
* a tool call costs the tokens of its ``arguments`` JSON string (its name is free);
* ``completion_tokens_details.reasoning_tokens`` = reasoning words;
  ``total_tokens = prompt_tokens + completion_tokens``.

Reasoning spends the ``max_completion_tokens``/``max_tokens`` budget first, then content (or
tool calls, which are dropped whole if they do not fit); hitting the budget gives
``finish_reason: "length"``.
"""

from __future__ import annotations

from .app import build_app
from .catalog import MODELS, ModelInfo
from .config import CliOption, SimConfig, cli_options, config_from_options
from .server import listening_line, run, serve
from .tokens import count_prompt_tokens, count_text_tokens

__all__ = [
    "MODELS",
    "CliOption",
    "ModelInfo",
    "SimConfig",
    "build_app",
    "cli_options",
    "config_from_options",
    "count_prompt_tokens",
    "count_text_tokens",
    "listening_line",
    "run",
    "serve",
]
