"""Generate one skill per model family from the catalog and the gateway's request schemas (§11).

Everything a skill states about models (ids, context, caps, speeds, prices) is read from the
catalog entries passed in, and its schema from the surfaces' wire types, so a skill cannot drift
from the gateway that serves it. Templates are package data under `skills/templates/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

import jinja2

from runapi.catalog import ModelEntry
from runapi.skills.bundle import SkillBundle
from runapi.skills.frontmatter import FrontMatter
from runapi.skills.profiles import FamilyProfile, default_model, profile_for, skill_name
from runapi.skills.schema import CALLBACK_URL_MAX_LENGTH, ENDPOINT_PATHS, build_schema_document

LICENSE_NAME = "Apache-2.0"
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
DESCRIPTION_MAX = 1024
SPEED_NOTES = {
    "standard": "the base speed of the family",
    "highspeed": "the same weights as the standard model, faster, for a higher output price",
    "local": "runs inside the gateway, no upstream account and no network needed",
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("runapi.skills", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # Markdown, JSON and Python, never HTML
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class ModelRow:
    """One catalog entry, formatted for the Markdown tables."""

    id: str
    context: str
    max_output: str
    speed: str
    tps: str
    input: str
    output: str
    cache_read: str
    cache_write: str
    released: str


def build_skill(
    family: str,
    models: list[ModelEntry],
    base_url: str,
    request_schemas: Mapping[str, Mapping[str, Any]],
    version: str,
    *,
    response_schemas: Mapping[str, Mapping[str, Any]] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> SkillBundle:
    """The skill of one family. `request_schemas` maps `chat.completions`/`responses`/`messages` to
    the JSON Schema of that surface's request body (`msgspec.json.schema(<wire Struct>)`);
    `aliases` (alias → model id) is listed in models.md for the family's models."""
    if not SEMVER_RE.match(version):
        raise ValueError(f"skill version {version!r} is not semver")
    models = sorted((m for m in models if m.status != "disabled"), key=_model_order)
    if not models:
        raise ValueError(f"family {family!r} has no enabled models")
    if not request_schemas:
        raise ValueError("request_schemas is empty: a skill needs at least one endpoint schema")
    name = skill_name(family)
    base = base_url.rstrip("/")
    profile = profile_for(family, models)
    default = default_model(profile, models)
    rows = [_row(m) for m in models]
    description = _description(profile, models)

    schema = build_schema_document(
        skill_name=name,
        title=f"{profile.title} on runapi: request bodies",
        models=models,
        request_schemas=request_schemas,
        response_schemas=response_schemas,
        schema_id=f"{base}/api/v1/skills/{name}/references/schema.json",
    )
    front = FrontMatter(
        name=name,
        description=description,
        license=LICENSE_NAME,
        compatibility="Needs HTTP(S) access to a runapi gateway and an API key in the environment.",
        metadata={
            "version": version,
            "family": family,
            "gateway": base,
            "documentation": f"{base}/llms.txt",
            "generated-by": f"runapi {version}",
        },
    )
    context: dict[str, Any] = {
        "front_matter": front.render(),
        "name": name,
        "title": profile.title,
        "summary": profile.summary,
        "call_phrase": profile.call_phrase,
        "speeds": sorted({m.speed_class for m in models}),
        "speed_notes": SPEED_NOTES,
        "base_url": base,
        "version": version,
        "license": LICENSE_NAME,
        "models": rows,
        "default": _row(default),
        "default_id": default.id,
        "guidance": profile.guidance,
        "quirks": profile.quirks,
        "caps": _cap_lines(models),
        "max_tokens": min(profile.example_max_tokens, default.max_output),
        "tools": default.has("tools") or default.has("forced_tool_choice"),
        "forced_tools_only": default.has("forced_tool_choice") and not default.has("tools"),
        "reasoning": any(m.has("reasoning") for m in models),
        "endpoints": sorted(request_schemas),
        "callback_max": CALLBACK_URL_MAX_LENGTH,
        "tiers": _tiers(models),
        "aliases": _aliases(models, aliases or {}),
        "statuses": [{"id": m.id, "status": m.status} for m in models if m.status != "active"],
    }
    manifest = _json(
        {
            "name": name,
            "version": version,
            "description": profile.summary,
            "skills": [{"path": f"skills/{name}/SKILL.md"}],
        }
    )
    skill = f"skills/{name}/"
    files = {
        ".claude-plugin/plugin.json": manifest,
        ".codex-plugin/plugin.json": manifest,
        "gemini-extension.json": manifest,
        "CHANGELOG.md": _render("CHANGELOG.md.j2", context),
        "LICENSE": _raw("LICENSE.txt"),
        "README.md": _render("README.md.j2", context),
        skill + "SKILL.md": _render("SKILL.md.j2", context),
        skill + "references/schema.json": _json(schema),
        skill + "references/models.md": _render("models.md.j2", context),
        skill + "references/tasks-and-webhooks.md": _render("tasks-and-webhooks.md.j2", context),
        skill + "scripts/verify_webhook.py": _raw("verify_webhook.py"),
        skill + "assets/.env.example": _render("env.example.j2", context),
    }
    return SkillBundle(
        name=name,
        version=version,
        description=description,
        summary=profile.summary,
        family=family,
        models=tuple(m.id for m in models),
        files=files,
    )


def _raw(template: str) -> bytes:
    """A template file shipped verbatim (no Jinja): the licence text, the webhook verifier."""
    return resources.files("runapi.skills").joinpath("templates", template).read_bytes()


def _render(template: str, context: Mapping[str, Any]) -> bytes:
    return _env.get_template(template).render(context).encode("utf-8")


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _description(profile: FamilyProfile, models: Sequence[ModelEntry]) -> str:
    """What + when + trigger words, within the spec's 1,024 characters."""
    ids = [m.id for m in models]
    listed = ", ".join(ids)
    what = f"Call {profile.call_phrase} ({listed}) through a runapi gateway."
    if len(what) > 400:  # a huge family: name the count instead of every id
        sample = ", ".join(ids[:3])
        what = f"Call {profile.call_phrase} ({len(ids)} variants, e.g. {sample}) through a runapi gateway."
    text = f"{what} {profile.when} Triggers: {', '.join(profile.triggers)}."
    return text if len(text) <= DESCRIPTION_MAX else text[: DESCRIPTION_MAX - 1] + "…"


def _model_order(model: ModelEntry) -> tuple[str, str]:
    return (model.released or "", model.id)


def _row(m: ModelEntry) -> ModelRow:
    return ModelRow(
        id=m.id,
        context=f"{m.context_window:,}",
        max_output=f"{m.max_output:,}",
        speed=m.speed_class,
        tps=str(m.tokens_per_second) if m.tokens_per_second else "-",
        input=_usd(m.prices.input),
        output=_usd(m.prices.output),
        cache_read=_usd(m.prices.cache_read),
        cache_write=_usd(m.prices.cache_write),
        released=m.released or "-",
    )


def _usd(value: Decimal) -> str:
    if value == 0:
        return "free"
    text = format(value.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def _cap_lines(models: Sequence[ModelEntry]) -> list[str]:
    by_cap: dict[int, list[str]] = {}
    for m in models:
        by_cap.setdefault(m.max_output, []).append(f"`{m.id}`")
    return [f"{', '.join(ids)} ≤ {cap:,} tokens" for cap, ids in sorted(by_cap.items())]


def _tiers(models: Sequence[ModelEntry]) -> list[dict[str, str]]:
    return [
        {
            "model": m.id,
            "above": f"{t.above_input_tokens:,}",
            "input": _usd(t.input),
            "output": _usd(t.output),
            "cache_read": _usd(t.cache_read),
            "cache_write": _usd(t.cache_write),
        }
        for m in models
        for t in sorted(m.input_tiers, key=lambda t: t.above_input_tokens)
    ]


def _aliases(models: Sequence[ModelEntry], aliases: Mapping[str, str]) -> list[dict[str, str]]:
    ids = {m.id for m in models}
    return [{"alias": a, "target": t} for a, t in sorted(aliases.items()) if t in ids]


__all__ = ["ENDPOINT_PATHS", "SEMVER_RE", "ModelRow", "build_skill"]
