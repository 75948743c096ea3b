"""`runapi skills …` with typer's CliRunner: install into a temporary workspace, verify, compare."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from runapi.catalog import Catalog
from runapi.cli.skills import skills_app
from runapi.skills import SkillCatalog
from runapi.store.database import Database

from .conftest import VERSION
from .test_routes import make_app

SKILL_TREE = {
    "SKILL.md",
    "references/schema.json",
    "references/models.md",
    "references/tasks-and-webhooks.md",
    "scripts/verify_webhook.py",
    "assets/.env.example",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "RUNAPI_CONFIG",
        "RUNAPI_CATALOG",
        "RUNAPI_PUBLIC_BASE_URL",
        "RUNAPI_HOST",
        "RUNAPI_PORT",
        "RUNAPI_BASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


runner = CliRunner()


def test_install_into_the_project_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    result = runner.invoke(
        skills_app, ["install", "MiniMax-M2.7", "--offline", "--base-url", "https://gw.example"]
    )
    assert result.exit_code == 0, result.output
    root = workspace / ".claude" / "skills" / "minimax"
    assert _tree(root) == SKILL_TREE
    assert "OPENAI_BASE_URL=https://gw.example/v1" in (root / "assets" / ".env.example").read_text()
    assert (root / "scripts" / "verify_webhook.py").stat().st_mode & 0o111


def test_install_by_alias_into_a_target_dir(tmp_path: Path) -> None:
    result = runner.invoke(
        skills_app, ["install", "smollm2", "--offline", "--target-dir", str(tmp_path / "agents")]
    )
    assert result.exit_code == 0, result.output
    assert _tree(tmp_path / "agents" / "local") == SKILL_TREE


def test_target_dir_named_after_the_skill_is_used_as_is(tmp_path: Path) -> None:
    result = runner.invoke(
        skills_app, ["install", "local", "--offline", "--target-dir", str(tmp_path / "local")]
    )
    assert result.exit_code == 0, result.output
    assert _tree(tmp_path / "local") == SKILL_TREE


@pytest.mark.parametrize("target", ["claude", "codex", "gemini", "openclaw"])
def test_user_level_targets(tmp_path: Path, target: str) -> None:
    result = runner.invoke(skills_app, ["install", "minimax", "--offline", "--target", target])
    assert result.exit_code == 0, result.output
    assert _tree(tmp_path / "home" / f".{target}" / "skills" / "minimax") == SKILL_TREE


def test_plugin_layout_install(tmp_path: Path) -> None:
    result = runner.invoke(
        skills_app, ["install", "minimax", "--offline", "--plugin", "--target-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    tree = _tree(tmp_path / "minimax")
    assert {
        ".claude-plugin/plugin.json",
        ".codex-plugin/plugin.json",
        "gemini-extension.json",
        "LICENSE",
    } <= tree
    assert {f"skills/minimax/{p}" for p in SKILL_TREE} <= tree
    verify = runner.invoke(skills_app, ["verify", str(tmp_path / "minimax")])
    assert verify.exit_code == 0, verify.output


def test_reinstall_needs_force_and_never_deletes_foreign_folders(tmp_path: Path) -> None:
    args = ["install", "minimax", "--offline", "--target-dir", str(tmp_path)]
    assert runner.invoke(skills_app, args).exit_code == 0
    again = runner.invoke(skills_app, args)
    assert again.exit_code == 1
    assert "--force" in again.output
    (tmp_path / "minimax" / "stale.md").write_text("old")
    assert runner.invoke(skills_app, [*args, "--force"]).exit_code == 0
    assert not (tmp_path / "minimax" / "stale.md").exists()
    foreign = tmp_path / "other" / "minimax"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    refused = runner.invoke(
        skills_app, ["install", "minimax", "--offline", "--force", "--target-dir", str(foreign)]
    )
    assert refused.exit_code == 1
    assert (foreign / "notes.txt").read_text() == "mine"


def test_unknown_model(tmp_path: Path) -> None:
    result = runner.invoke(skills_app, ["install", "gpt-9", "--offline", "--target-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no skill for 'gpt-9'" in result.output


def test_verify_reports_problems(tmp_path: Path) -> None:
    runner.invoke(skills_app, ["install", "minimax", "--offline", "--target-dir", str(tmp_path)])
    good = runner.invoke(skills_app, ["verify", str(tmp_path / "minimax")])
    assert good.exit_code == 0
    assert "valid skill" in good.output
    moved = (tmp_path / "minimax").rename(tmp_path / "renamed")
    bad = runner.invoke(skills_app, ["verify", str(moved)])
    assert bad.exit_code == 1
    assert "must equal the folder name" in bad.output


def test_compare_prints_every_variant(catalog: Catalog) -> None:
    result = runner.invoke(skills_app, ["compare"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for model in catalog:
        assert model.id in result.output
    assert "2.40" in result.output
    assert "524,288" in result.output
    only_local = runner.invoke(skills_app, ["compare", "--family", "local"], env={"COLUMNS": "250"})
    assert "SmolLM2-135M-Instruct" in only_local.output
    assert "MiniMax-M3" not in only_local.output


def test_list_offline() -> None:
    result = runner.invoke(skills_app, ["list", "--offline"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "minimax" in result.output
    assert "MiniMax-M2.7-highspeed" in result.output
    assert VERSION in result.output


async def test_install_and_list_from_a_running_gateway(
    catalog: Catalog, skills: SkillCatalog, tmp_path: Path
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    server = TestServer(make_app(catalog, skills, db), host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        installed = await asyncio.to_thread(
            runner.invoke,
            skills_app,
            ["install", "MiniMax-M3", "--base-url", base, "--plugin", "--target-dir", str(tmp_path / "ws")],
        )
        assert installed.exit_code == 0, installed.output
        root = tmp_path / "ws" / "minimax"
        assert {f"skills/minimax/{p}" for p in SKILL_TREE} <= _tree(root)
        assert (root / "skills/minimax/SKILL.md").read_bytes() == skills.bundles["minimax"].files[
            "skills/minimax/SKILL.md"
        ]
        listed = await asyncio.to_thread(
            runner.invoke, skills_app, ["list", "--base-url", base], env={"COLUMNS": "250"}
        )
        assert listed.exit_code == 0
        assert "SmolLM2-135M-Instruct" in listed.output
        missing = await asyncio.to_thread(
            runner.invoke, skills_app, ["install", "nope", "--base-url", base, "--target-dir", str(tmp_path)]
        )
        assert missing.exit_code == 1
        assert "HTTP 404" in missing.output
    finally:
        await server.close()
        await db.dispose()


def test_unreachable_gateway_suggests_offline(tmp_path: Path) -> None:
    result = runner.invoke(
        skills_app, ["install", "minimax", "--base-url", "http://127.0.0.1:9", "--target-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "--offline" in result.output
