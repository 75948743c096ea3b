"""The prose a skill needs that the catalog does not hold: titles, guidance, quirks per family.

Numbers (context, caps, speeds, prices) always come from the catalog; a profile only says how to
talk about a family. A family without a profile (a user's own catalog) gets a generic one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from runapi.catalog import ModelEntry

_NAME_INVALID = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, kw_only=True)
class FamilyProfile:
    title: str  # "MiniMax text models", for headings
    call_phrase: str  # "MiniMax's text models", for sentences
    summary: str  # one line, for manifests and listings
    when: str  # "Use when ..." sentence of the front matter description
    triggers: tuple[str, ...]  # trigger words for the description
    preferred_default: tuple[str, ...]  # example model, first one present wins
    guidance: tuple[str, ...]  # "when to pick which" bullets (step 1)
    quirks: tuple[str, ...]  # parameter quirks (step 3)
    example_max_tokens: int = 256


PROFILES: dict[str, FamilyProfile] = {
    "minimax": FamilyProfile(
        title="MiniMax text models",
        call_phrase="MiniMax's text models",
        summary="MiniMax text models through a runapi gateway",
        when=(
            "Use when code needs MiniMax chat completions, streaming, tool calls, reasoning output, "
            "async tasks or signed webhooks through the OpenAI or Anthropic SDK."
        ),
        triggers=("MiniMax", "M2.7", "M3", "highspeed", "runapi", "OpenAI SDK", "Anthropic SDK"),
        preferred_default=("MiniMax-M2.7", "MiniMax-M2.5", "MiniMax-M3"),
        guidance=(
            "Default to the newest standard model for general coding and agent work.",
            "Pick a `-highspeed` variant when latency matters: the same weights, faster (see tok/s), "
            "for a higher output price.",
            "Pick `MiniMax-M3` for the longest context, image input, or switchable thinking; very long "
            "inputs are billed at a higher tier (references/models.md).",
            "Older versions stay available for reproducibility; prefer the newest for new code.",
        ),
        quirks=(
            "`temperature` must be in (0, 1]; the gateway clamps other values, the schema rejects them.",
            "`n` must be 1: MiniMax returns one choice.",
            "The output cap counts reasoning tokens: leave room for thinking before the answer.",
            "M2.x models always think; `reasoning_effort` only switches thinking on M3.",
            "`stop` sequences are enforced by the gateway, also while streaming.",
        ),
    ),
    "local": FamilyProfile(
        title="Embedded local model",
        call_phrase="the embedded local model",
        summary="The gateway's embedded local model (free, offline, for tests and demos)",
        when=(
            "Use when code needs a free, offline, deterministic-enough model for tests, demos or CI "
            "through the OpenAI or Anthropic SDK, with streaming, JSON mode or a forced tool call."
        ),
        triggers=("local model", "SmolLM2", "offline", "free", "tests", "CI", "runapi"),
        preferred_default=("SmolLM2-135M-Instruct",),
        guidance=(
            "Pick it for tests, CI and demos: it costs nothing and needs no upstream account.",
            "Do not expect quality answers: it is a very small model. Use a hosted family for real work.",
        ),
        quirks=(
            "`temperature` must be in (0, 1] and `n` must be 1, as for the hosted models.",
            "Only a forced `tool_choice` (a named function) is offered: `auto` tool calling is beyond "
            "a model this small.",
            "The context window is small: keep prompts short.",
        ),
        example_max_tokens=64,
    ),
}


def skill_name(family: str) -> str:
    """A family id as an Agent Skills name: `[a-z0-9-]`, no edge or double hyphens, ≤ 64 chars."""
    name = _NAME_INVALID.sub("-", family.lower()).strip("-")[:64].strip("-")
    if not name:
        raise ValueError(f"family {family!r} yields no valid skill name")
    return name


def profile_for(family: str, models: Sequence[ModelEntry]) -> FamilyProfile:
    known = PROFILES.get(family)
    if known is not None:
        return known
    ids = tuple(m.id for m in models)
    return FamilyProfile(
        title=f"{family} models",
        call_phrase=f"the {family} models",
        summary=f"{family} models through a runapi gateway",
        when=(
            "Use when code needs these models through the OpenAI or Anthropic SDK, with streaming, "
            "async tasks or signed webhooks."
        ),
        triggers=(family, *ids[:3], "runapi"),
        preferred_default=ids[:1],
        guidance=("Compare the variants in references/models.md and start with the cheapest that works.",),
        quirks=("`temperature` must be in (0, 1] and `n` must be 1.",),
    )


def default_model(profile: FamilyProfile, models: Sequence[ModelEntry]) -> ModelEntry:
    by_id = {m.id: m for m in models}
    for wanted in profile.preferred_default:
        if wanted in by_id and by_id[wanted].status == "active":
            return by_id[wanted]
    active = [m for m in models if m.status == "active"]
    return (active or list(models))[0]
