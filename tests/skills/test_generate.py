"""Every generated skill has the §11.1 layout, valid front matter and catalog-true content."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from runapi.catalog import Catalog, load_catalog
from runapi.skills import SkillCatalog, build_skill, verify_skill_dir
from runapi.skills.bundle import Layout
from runapi.skills.frontmatter import FRONT_MATTER_RE, parse_front_matter, split_front_matter
from runapi.skills.verify import MANIFESTS

from .conftest import BASE_URL, VERSION


def _skill_layout(name: str) -> set[str]:
    return {
        ".claude-plugin/plugin.json",
        ".codex-plugin/plugin.json",
        "gemini-extension.json",
        "CHANGELOG.md",
        "LICENSE",
        "README.md",
        f"skills/{name}/SKILL.md",
        f"skills/{name}/references/schema.json",
        f"skills/{name}/references/models.md",
        f"skills/{name}/references/tasks-and-webhooks.md",
        f"skills/{name}/scripts/verify_webhook.py",
        f"skills/{name}/assets/.env.example",
    }


def test_one_skill_per_family(skills: SkillCatalog, catalog: Catalog) -> None:
    assert set(skills.bundles) == set(catalog.families()) == {"minimax", "local"}
    for family, models in catalog.families().items():
        assert skills.bundles[family].models == tuple(
            sorted((m.id for m in models), key=lambda i: (catalog.models[i].released or "", i))
        )


def test_layout_is_exactly_the_documented_tree(skills: SkillCatalog) -> None:
    for name, bundle in skills.bundles.items():
        assert set(bundle.files) == _skill_layout(name)


@pytest.mark.parametrize("layout", ["plugin", "skill"])
def test_every_generated_skill_verifies(skills: SkillCatalog, tmp_path: Path, layout: Layout) -> None:
    for name, bundle in skills.bundles.items():
        root = tmp_path / layout / name
        bundle.write_to(root if layout == "skill" else root.parent, layout)
        assert verify_skill_dir(root) == []


def test_front_matter_follows_the_agent_skills_rules(skills: SkillCatalog) -> None:
    for name, bundle in skills.bundles.items():
        text = bundle.skill_md
        assert FRONT_MATTER_RE.search(text)
        block, body = split_front_matter(text)
        fields = parse_front_matter(block)
        assert fields["name"] == name
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)
        assert len(name) <= 64
        description = fields["description"]
        assert isinstance(description, str)
        assert 1 <= len(description) <= 1024
        assert "Use when" in description
        assert "Triggers:" in description
        assert fields["license"] == "Apache-2.0"
        metadata = fields["metadata"]
        assert isinstance(metadata, dict)
        assert metadata["version"] == VERSION
        assert all(isinstance(v, str) for v in metadata.values())
        assert len(body.splitlines()) < 500


def test_body_has_the_four_steps_and_agent_rules(skills: SkillCatalog) -> None:
    for bundle in skills.bundles.values():
        headings = re.findall(r"^## (.+)$", bundle.skill_md, re.M)
        assert headings == [
            "1. Choose the model",
            "2. Set up the key and install",
            "3. Develop",
            "4. Receive",
            "Agent rules",
        ]
        for needle in (
            "Prefer: respond-async",
            "Location",
            "callback_url",
            "verify_webhook",
            "Idempotency-Key",
        ):
            assert needle in bundle.skill_md


def test_manifests_share_name_version_and_skill_path(skills: SkillCatalog) -> None:
    for name, bundle in skills.bundles.items():
        manifests = [json.loads(bundle.files[p]) for p in MANIFESTS]
        assert len(manifests) == 3
        for manifest in manifests:
            assert manifest == {
                "name": name,
                "version": VERSION,
                "description": bundle.summary,
                "skills": [{"path": f"skills/{name}/SKILL.md"}],
            }


def test_models_md_compares_every_variant_from_the_catalog(skills: SkillCatalog, catalog: Catalog) -> None:
    models_md = skills.bundles["minimax"].files["skills/minimax/references/models.md"].decode()
    rows = {line.split("|")[1].strip(" `"): line for line in models_md.splitlines() if line.startswith("| `")}
    for model in catalog.families()["minimax"]:
        row = rows[model.id]
        assert f"{model.context_window:,}" in row
        assert f"{model.max_output:,}" in row
        assert model.speed_class in row
        assert str(model.tokens_per_second) in row
    cells = [c.strip() for c in rows["MiniMax-M2.7-highspeed"].split("|")[1:-1]]
    assert cells[5:9] == ["$0.60", "$2.40", "$0.06", "$0.375"]
    assert "above 524,288 input tokens" in models_md  # M3's input tier
    local_md = skills.bundles["local"].files["skills/local/references/models.md"].decode()
    assert "| free | free |" in local_md


def test_env_example_points_at_this_deployment(skills: SkillCatalog) -> None:
    env = skills.bundles["minimax"].files["skills/minimax/assets/.env.example"].decode()
    assert f"OPENAI_BASE_URL={BASE_URL}/v1\n" in env
    assert f"ANTHROPIC_BASE_URL={BASE_URL}\n" in env
    assert re.search(r"^OPENAI_API_KEY=$", env, re.M)


def test_family_specific_guidance(skills: SkillCatalog) -> None:
    local = skills.bundles["local"].skill_md
    assert 'tool_choice={"type": "function"' in local
    assert 'tool_choice="auto"' not in local
    assert "Reasoning round-trip" not in local
    minimax = skills.bundles["minimax"].skill_md
    assert 'tool_choice="auto"' in minimax
    assert "Reasoning round-trip" in minimax


def test_disabled_models_are_left_out(request_schemas: dict[str, dict[str, Any]]) -> None:
    catalog = load_catalog(overrides=[{"id": "MiniMax-M2", "status": "disabled"}])
    skills = SkillCatalog(catalog, BASE_URL, request_schemas, VERSION)
    assert "MiniMax-M2" not in skills.bundles["minimax"].models
    assert "`MiniMax-M2`" not in skills.bundles["minimax"].skill_md


def test_a_family_without_a_profile_still_gets_a_valid_skill(
    request_schemas: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    catalog = load_catalog(
        overrides=[
            {
                "id": "Acme-1",
                "family": "Acme_Labs",
                "upstream": "acme",
                "context_window": 32000,
                "max_output": 4096,
                "speed_class": "standard",
                "model_class": "standard",
                "prices": {"input": "1", "output": "2"},
            }
        ]
    )
    bundle = build_skill("Acme_Labs", catalog.families()["Acme_Labs"], BASE_URL, request_schemas, VERSION)
    assert bundle.name == "acme-labs"
    bundle.write_to(tmp_path / "acme-labs")
    assert verify_skill_dir(tmp_path / "acme-labs") == []


def test_version_must_be_semver(catalog: Catalog, request_schemas: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="semver"):
        build_skill("minimax", catalog.families()["minimax"], BASE_URL, request_schemas, "v1")


def test_skills_need_request_schemas(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="request_schemas"):
        build_skill("minimax", catalog.families()["minimax"], BASE_URL, {}, VERSION)
