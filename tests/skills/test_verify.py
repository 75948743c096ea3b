"""verify_skill_dir catches each rule of runapi-contract §11.2 and §11.4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runapi.skills import SkillCatalog, verify_skill_dir


@pytest.fixture
def skill_dir(skills: SkillCatalog, tmp_path: Path) -> Path:
    skills.bundles["minimax"].write_to(tmp_path / "minimax")
    return tmp_path / "minimax"


@pytest.fixture
def plugin_dir(skills: SkillCatalog, tmp_path: Path) -> Path:
    skills.bundles["minimax"].write_to(tmp_path / "repo", "plugin")
    return tmp_path / "repo" / "minimax"


def _edit_front_matter(folder: Path, old: str, new: str) -> None:
    path = folder / "SKILL.md"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _one(problems: list[str], needle: str) -> None:
    assert len(problems) == 1, problems
    assert needle in problems[0], problems


def test_name_must_match_the_folder(skill_dir: Path) -> None:
    renamed = skill_dir.rename(skill_dir.parent / "other")
    _one(verify_skill_dir(renamed), "must equal the folder name")


@pytest.mark.parametrize("bad", ["MiniMax", "mini--max", "-minimax", "mini_max", "a" * 65])
def test_name_rules(skill_dir: Path, bad: str) -> None:
    _edit_front_matter(skill_dir, "name: minimax", f"name: {bad}")
    renamed = skill_dir.rename(skill_dir.parent / bad)
    problems = verify_skill_dir(renamed)
    assert problems
    assert all("'name'" in p for p in problems), problems


def test_description_at_most_1024_characters(skill_dir: Path) -> None:
    text = (skill_dir / "SKILL.md").read_text()
    start = text.index("description: ") + len("description: ")
    end = text.index("\n", start)
    (skill_dir / "SKILL.md").write_text(text[:start] + json.dumps("x" * 1025) + text[end:])
    _one(verify_skill_dir(skill_dir), "1025 characters")


def test_metadata_values_must_be_strings(skill_dir: Path) -> None:
    _edit_front_matter(skill_dir, "metadata:\n", "metadata:\n  retries: 3\n")
    _one(verify_skill_dir(skill_dir), "metadata.retries must be a string")


def test_unknown_front_matter_fields_are_reported(skill_dir: Path) -> None:
    _edit_front_matter(skill_dir, "license:", "provider_page: https://x\nlicense:")
    _one(verify_skill_dir(skill_dir), "unknown front matter field 'provider_page'")


def test_front_matter_must_have_name_and_description(skill_dir: Path) -> None:
    text = (skill_dir / "SKILL.md").read_text()
    (skill_dir / "SKILL.md").write_text(text.replace("description:", "summary:", 1))
    problems = verify_skill_dir(skill_dir)
    assert any("required pattern" in p for p in problems)
    assert any("'description' is required" in p for p in problems)


def test_missing_reference_links_and_deep_references(skill_dir: Path) -> None:
    (skill_dir / "references" / "models.md").unlink()
    (skill_dir / "references" / "deeper").mkdir()
    problems = verify_skill_dir(skill_dir)
    assert any("points to a missing file" in p for p in problems)
    assert any("one level deep" in p for p in problems)


def test_schema_must_be_valid_json_schema(skill_dir: Path) -> None:
    (skill_dir / "references" / "schema.json").write_text(json.dumps({"type": "no-such-type"}))
    _one(verify_skill_dir(skill_dir), "not a valid Draft 2020-12 JSON Schema")
    (skill_dir / "references" / "schema.json").write_text("{")
    _one(verify_skill_dir(skill_dir), "not valid JSON")


def test_scripts_must_compile(skill_dir: Path) -> None:
    (skill_dir / "scripts" / "verify_webhook.py").write_text("def broken(:\n")
    _one(verify_skill_dir(skill_dir), "syntax error")


def test_manifest_versions_must_agree(plugin_dir: Path) -> None:
    path = plugin_dir / "gemini-extension.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "version": "0.2.0"}))
    _one(verify_skill_dir(plugin_dir), "manifest versions differ")


def test_manifest_fields_and_skill_paths(plugin_dir: Path) -> None:
    path = plugin_dir / ".codex-plugin" / "plugin.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "version": "1.0", "skills": [{"path": "minimax/SKILL.md"}]}))
    problems = verify_skill_dir(plugin_dir)
    assert any("semver" in p for p in problems)
    assert any("must start with 'skills/'" in p for p in problems)
    (plugin_dir / ".claude-plugin" / "plugin.json").unlink()
    assert any(".claude-plugin/plugin.json: missing" in p for p in verify_skill_dir(plugin_dir))


def test_problems_inside_a_plugin_name_the_skill(plugin_dir: Path) -> None:
    (plugin_dir / "skills" / "minimax" / "scripts" / "verify_webhook.py").write_text("(")
    _one(verify_skill_dir(plugin_dir), "skills/minimax/scripts/verify_webhook.py")


def test_an_unrelated_folder_is_not_a_skill(tmp_path: Path) -> None:
    _one(verify_skill_dir(tmp_path), "neither a skill folder")
    _one(verify_skill_dir(tmp_path / "missing"), "not a directory")
