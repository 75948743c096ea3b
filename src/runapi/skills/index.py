"""Discovery documents for the built skills: the Agent Skills index, the skill list, `/llms.txt`.

runapi-contract §11.5: `/.well-known/agent-skills/index.json` lists each skill's archive with its
sha256 digest; `/.well-known/agent-skills/v<version>/index.json` is the same list pinned to one
version; `/llms.txt` follows the llms.txt proposal (H1, `>` summary, H2 sections of links, an
`Optional` section).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from runapi.catalog import ModelEntry
from runapi.skills.bundle import SkillBundle

DISCOVERY_SCHEMA = "https://schemas.agentskills.io/discovery/0.2.0/schema.json"


def archive_url(base_url: str, bundle: SkillBundle, *, pinned: bool = False) -> str:
    url = f"{base_url}/api/v1/skills/{bundle.name}.tar.gz"
    # A pinned URL stops resolving (404) once the gateway serves another version, instead of
    # silently serving different bytes under an index that promised immutability.
    return f"{url}?version={bundle.version}" if pinned else url


def discovery_index(bundles: Sequence[SkillBundle], base_url: str, *, pinned: bool = False) -> dict[str, Any]:
    return {
        "$schema": DISCOVERY_SCHEMA,
        "skills": [
            {
                "name": b.name,
                "type": "archive",
                "description": b.description,
                "url": archive_url(base_url, b, pinned=pinned),
                "digest": f"sha256:{b.sha256}",
                "version": b.version,
            }
            for b in sorted(bundles, key=lambda b: b.name)
        ],
    }


def skill_listing(bundles: Sequence[SkillBundle], base_url: str) -> dict[str, Any]:
    """`GET /api/v1/skills`: the index entries plus the models and files of each skill."""
    return {
        "object": "list",
        "data": [
            {
                "object": "skill",
                "name": b.name,
                "family": b.family,
                "description": b.description,
                "summary": b.summary,
                "version": b.version,
                "models": list(b.models),
                "url": archive_url(base_url, b),
                "zip_url": f"{base_url}/v1/models/{b.models[0]}/skill?format=zip",
                "plugin_url": f"{base_url}/v1/models/{b.models[0]}/skill?layout=plugin",
                "digest": f"sha256:{b.sha256}",
                "files": sorted(b.skill_files),
            }
            for b in sorted(bundles, key=lambda b: b.name)
        ],
    }


def llms_txt(
    bundles: Sequence[SkillBundle], models: Iterable[ModelEntry], base_url: str, version: str
) -> str:
    listed = [m for m in models if m.status != "disabled"]
    model_names = ", ".join(m.id for m in listed[:12]) + (", …" if len(listed) > 12 else "")
    lines = [
        "# runapi",
        "",
        f"> runapi {version} is a self-hostable LLM API gateway at {base_url}: one API key for the whole "
        "model catalog through the OpenAI Chat Completions, OpenAI Responses and Anthropic Messages "
        "APIs, with async tasks, signed webhooks and per-model skills for coding agents.",
        "",
        "Authenticate with `Authorization: Bearer <key>` or `x-api-key: <key>`. Point the OpenAI SDK at "
        f"`{base_url}/v1` and the Anthropic SDK at `{base_url}`. Models: {model_names}.",
        "",
        "## Endpoints",
        "",
        f"- [Chat Completions]({base_url}/v1/chat/completions): POST, OpenAI Chat Completions format",
        f"- [Responses]({base_url}/v1/responses): POST, OpenAI Responses format",
        f"- [Messages]({base_url}/v1/messages): POST, Anthropic Messages format",
        f"- [Models]({base_url}/v1/models): GET, the catalog (OpenAI or Anthropic list shape)",
        f"- [Tasks]({base_url}/v1/tasks): GET, every generation as a task; poll `/v1/tasks/{{id}}`",
        "",
        "## Skills",
        "",
    ]
    for b in sorted(bundles, key=lambda b: b.name):
        lines.append(f"- [{b.name}]({base_url}/api/v1/skills/{b.name}/SKILL.md): {b.summary}")
    lines += [
        f"- [Skill index]({base_url}/.well-known/agent-skills/index.json): archives with sha256 digests",
        "",
        "## Docs",
        "",
    ]
    for b in sorted(bundles, key=lambda b: b.name):
        docs = f"{base_url}/api/v1/skills/{b.name}/references"
        lines += [
            f"- [{b.name} models]({docs}/models.md): variants compared, context, speed, prices",
            f"- [{b.name} tasks and webhooks]({docs}/tasks-and-webhooks.md): 202 + Location, callback_url",
        ]
    lines += [
        "",
        "## Optional",
        "",
        f"- [Prices]({base_url}/api/v1/price_schedules): current price schedules",
        f"- [Skill list]({base_url}/api/v1/skills): skills with their models and files",
        f"- [Pinned skill index]({base_url}/.well-known/agent-skills/v{version}/index.json): "
        f"the index of version {version}",
    ]
    for b in sorted(bundles, key=lambda b: b.name):
        lines.append(
            f"- [{b.name} request schema]({base_url}/api/v1/skills/{b.name}/references/schema.json): "
            "JSON Schema per endpoint"
        )
    return "\n".join(lines) + "\n"
