"""The models the simulator answers for, with the limits it enforces."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODELS", "ModelInfo"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    created: int
    """Unix seconds, as MiniMax's ``GET /v1/models`` reports it (release day, 02:00 UTC)."""
    context_window: int
    """Largest accepted prompt, in simulator tokens."""
    max_output: int | None
    """Largest accepted ``max_tokens``; None = no cap (probes found none on M2.x)."""
    is_m3: bool
    """M3 can switch thinking off and accepts several system messages; M2.x cannot."""


# 02:00 UTC matches the one `created` value seen on the wire (MiniMax-M2.7 = 1773799200).
_M2 = 1761530400  # 2025-10-27
_M21 = 1766455200  # 2025-12-23
_M25 = 1770948000  # 2026-02-13
_M27 = 1773799200  # 2026-03-18
_M3 = 1780279200  # 2026-06-01

_M2_WINDOW = 204_800
_M3_WINDOW = 1_000_000
_M3_MAX_OUTPUT = 524_288  # probes: M3 rejects larger max_tokens

MODELS: dict[str, ModelInfo] = {
    m.id: m
    for m in (
        ModelInfo("MiniMax-M2", _M2, _M2_WINDOW, None, is_m3=False),
        ModelInfo("MiniMax-M2.1", _M21, _M2_WINDOW, None, is_m3=False),
        ModelInfo("MiniMax-M2.1-highspeed", _M21, _M2_WINDOW, None, is_m3=False),
        ModelInfo("MiniMax-M2.5", _M25, _M2_WINDOW, None, is_m3=False),
        ModelInfo("MiniMax-M2.5-highspeed", _M25, _M2_WINDOW, None, is_m3=False),
        ModelInfo("MiniMax-M2.7", _M27, _M2_WINDOW, None, is_m3=False),
        ModelInfo("MiniMax-M2.7-highspeed", _M27, _M2_WINDOW, None, is_m3=False),
        ModelInfo("MiniMax-M3", _M3, _M3_WINDOW, _M3_MAX_OUTPUT, is_m3=True),
    )
}
"""Model id → info, in the order ``GET /v1/models`` lists them."""
