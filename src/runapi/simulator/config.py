"""Simulator configuration and the command-line options that build it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CliOption", "SimConfig", "cli_options", "config_from_options"]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Process-wide behaviour of the simulator.

    Every pacing field can be overridden per request with the ``@sim`` directive.
    """

    ttft_ms: float = 0
    """Delay before the first streamed chunk (and before a non-stream answer), in milliseconds."""
    tps: float = 0
    """Output tokens per second after the first one; 0 means no pacing at all."""
    error_rate: float = 0
    """Fraction of requests answered with a random retryable MiniMax error (decided by the request hash)."""
    api_key: str | None = None
    """If set, require ``Authorization: Bearer <api_key>``; if None, any non-empty Bearer token passes."""
    chunk_tokens: int = 1
    """Output tokens per streamed chunk."""
    default_tokens: int = 16
    """Content tokens generated when the request's directive does not say."""
    omit_done: bool = False
    """Never send ``data: [DONE]`` (MiniMax's known bug), as if every request said ``no_done=1``."""
    seed: int = 0
    """Mixed into the request hash: a different seed gives different (still deterministic) output."""

    def __post_init__(self) -> None:
        # Fail at startup, not on the first request.
        if self.ttft_ms < 0 or self.tps < 0:
            raise ValueError("ttft_ms and tps must be >= 0")
        if not 0 <= self.error_rate <= 1:
            raise ValueError("error_rate must be between 0 and 1")
        if self.chunk_tokens < 1:
            raise ValueError("chunk_tokens must be >= 1")
        if self.default_tokens < 0:
            raise ValueError("default_tokens must be >= 0")


@dataclass(frozen=True, slots=True)
class CliOption:
    """One command-line option of ``runapi simulate`` / ``python -m runapi.simulator``.

    Framework-neutral on purpose: argparse (``__main__``) and the gateway's typer CLI both
    build their options from this list, so the two cannot drift apart.
    """

    flag: str
    """Long flag, e.g. ``--ttft-ms``."""
    field: str
    """Keyword of :class:`SimConfig` (or of :func:`runapi.simulator.run` for host/port)."""
    type: type[Any]
    """``int``, ``float``, ``str`` or ``bool`` (a bool option is a presence flag)."""
    default: Any
    help: str


def _config_option(flag: str, field: str, type_: type[Any], help_: str) -> CliOption:
    default = {f.name: f.default for f in dataclasses.fields(SimConfig)}[field]
    return CliOption(flag=flag, field=field, type=type_, default=default, help=help_)


cli_options: tuple[CliOption, ...] = (
    CliOption("--host", "host", str, "127.0.0.1", "Interface to bind."),
    CliOption("--port", "port", int, 9100, "Port to bind; 0 picks a free port (printed on startup)."),
    _config_option("--ttft-ms", "ttft_ms", float, "Delay before the first token, in ms."),
    _config_option("--tps", "tps", float, "Output tokens per second; 0 = no pacing."),
    _config_option(
        "--error-rate", "error_rate", float, "Fraction of requests failing with a retryable error."
    ),
    _config_option("--api-key", "api_key", str, "Require this Bearer key (default: any non-empty key)."),
    _config_option("--chunk-tokens", "chunk_tokens", int, "Output tokens per stream chunk."),
    _config_option(
        "--default-tokens", "default_tokens", int, "Content tokens when the request does not say."
    ),
    _config_option("--omit-done", "omit_done", bool, "Never send data: [DONE] (MiniMax's known bug)."),
    _config_option("--seed", "seed", int, "Seed mixed into every request hash."),
)
"""All options, host and port first. Options whose ``field`` is not a :class:`SimConfig` field
(``host``, ``port``) are arguments of :func:`runapi.simulator.run`."""


def config_from_options(values: Mapping[str, Any]) -> SimConfig:
    """Build a :class:`SimConfig` from parsed option values keyed by :attr:`CliOption.field`.

    Keys that are not config fields (host, port) are ignored, so a CLI can pass everything it parsed.
    """
    names = {f.name for f in dataclasses.fields(SimConfig)}
    return SimConfig(**{k: v for k, v in values.items() if k in names})
