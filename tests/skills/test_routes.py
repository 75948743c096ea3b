"""The skill routes on a real aiohttp server: archives, index, llms.txt, negotiation, no auth."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from runapi.api.skills import EXTRAS_KEY, routes
from runapi.auth import AccountRepository, KeyRepository
from runapi.catalog import Catalog
from runapi.providers.registry import ProviderRegistry
from runapi.services import SERVICES, Services
from runapi.settings import Settings
from runapi.skills import SkillCatalog, read_archive
from runapi.store.database import Database

from .conftest import BASE_URL, VERSION


def make_app(catalog: Catalog, skills: SkillCatalog | None, db: Database) -> web.Application:
    app = web.Application()
    extras = {EXTRAS_KEY: skills} if skills is not None else {}
    app[SERVICES] = Services(
        settings=Settings(),
        db=db,
        catalog=catalog,
        accounts=AccountRepository(db),
        keys=KeyRepository(db),
        providers=ProviderRegistry({}),
        extras=extras,
    )
    app.add_routes(routes())
    return app


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'skills.db'}")
    yield db
    await db.dispose()


@pytest.fixture
async def client(
    catalog: Catalog, skills: SkillCatalog, database: Database
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(make_app(catalog, skills, database), host="127.0.0.1")) as c:
        yield c


async def test_model_skill_is_the_family_archive(
    client: TestClient[web.Request, web.Application], skills: SkillCatalog
) -> None:
    for model, name in (
        ("MiniMax-M2.7", "minimax"),
        ("gpt-4o", "minimax"),
        ("minimax-m2.5", "minimax"),
        ("smollm2", "local"),
    ):
        reply = await client.get(f"/v1/models/{model}/skill")
        assert reply.status == 200, model
        assert reply.headers["Content-Type"] == "application/gzip"
        assert reply.headers["X-RunAPI-Skill-Name"] == name
        body = await reply.read()
        assert body == skills.bundles[name].to_tar_gz()
        assert reply.headers["X-RunAPI-Skill-Digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
        assert "SKILL.md" in read_archive(body)


async def test_zip_by_query_or_accept(
    client: TestClient[web.Request, web.Application], skills: SkillCatalog
) -> None:
    by_query = await client.get("/v1/models/MiniMax-M3/skill", params={"format": "zip"})
    by_accept = await client.get("/v1/models/MiniMax-M3/skill", headers={"Accept": "application/zip"})
    for reply in (by_query, by_accept):
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "application/zip"
        assert await reply.read() == skills.bundles["minimax"].to_zip()


async def test_plugin_layout(client: TestClient[web.Request, web.Application]) -> None:
    reply = await client.get("/v1/models/local/skill", params={"layout": "plugin"})
    assert reply.status == 200
    files = read_archive(await reply.read())
    assert "local/.claude-plugin/plugin.json" in files
    assert "local/skills/local/SKILL.md" in files
    bad = await client.get("/v1/models/local/skill", params={"layout": "flat"})
    assert bad.status == 404


async def test_unknown_model_is_404_in_the_gateway_envelope(
    client: TestClient[web.Request, web.Application],
) -> None:
    reply = await client.get("/v1/models/gpt-9-unknown/skill")
    assert reply.status == 404
    body = await reply.json()
    assert body["error"]["code"] == "model_not_found"
    assert reply.headers["x-request-id"].startswith("req_")


async def test_skill_list_and_named_archive(
    client: TestClient[web.Request, web.Application], skills: SkillCatalog
) -> None:
    listing = await (await client.get("/api/v1/skills")).json()
    assert [s["name"] for s in listing["data"]] == ["local", "minimax"]
    minimax = listing["data"][1]
    assert minimax["models"] == list(skills.bundles["minimax"].models)
    assert "SKILL.md" in minimax["files"]
    archive = await client.get("/api/v1/skills/minimax.tar.gz")
    assert await archive.read() == skills.bundles["minimax"].to_tar_gz()
    assert (await client.get("/api/v1/skills/nope.tar.gz")).status == 404


async def test_pinned_archive_only_at_the_served_version(
    client: TestClient[web.Request, web.Application],
) -> None:
    assert (await client.get("/api/v1/skills/minimax.tar.gz", params={"version": VERSION})).status == 200
    assert (await client.get("/api/v1/skills/minimax.tar.gz", params={"version": "0.0.9"})).status == 404


async def test_discovery_index_digests_match_the_served_archives(
    client: TestClient[web.Request, web.Application],
) -> None:
    for path in ("/.well-known/agent-skills/index.json", f"/.well-known/agent-skills/v{VERSION}/index.json"):
        reply = await client.get(path)
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "application/json"
        index = json.loads(await reply.read())
        for entry in index["skills"]:
            archive_path = entry["url"].removeprefix(BASE_URL)
            archive = await (await client.get(archive_path)).read()
            assert entry["digest"] == "sha256:" + hashlib.sha256(archive).hexdigest()
    assert (await client.get("/.well-known/agent-skills/v9.9.9/index.json")).status == 404


async def test_llms_txt_follows_the_convention(client: TestClient[web.Request, web.Application]) -> None:
    reply = await client.get("/llms.txt")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    text = await reply.text()
    lines = text.splitlines()
    assert lines[0] == "# runapi"
    assert lines[2].startswith("> ")
    sections = re.findall(r"^## (.+)$", text, re.M)
    assert sections[-1] == "Optional"
    assert {"Endpoints", "Skills", "Docs"} <= set(sections)
    links = re.findall(r"^- \[[^\]]+\]\((\S+)\)(?::\s\S.*)?$", text, re.M)
    assert len(links) == sum(1 for line in lines if line.startswith("- "))
    assert f"{BASE_URL}/api/v1/skills/minimax/SKILL.md" in links


async def test_skill_files_are_served_as_docs(
    client: TestClient[web.Request, web.Application], skills: SkillCatalog
) -> None:
    reply = await client.get("/api/v1/skills/minimax/SKILL.md")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/markdown")
    assert await reply.text() == skills.bundles["minimax"].skill_md
    schema = await client.get("/api/v1/skills/minimax/references/schema.json")
    assert schema.headers["Content-Type"] == "application/json"
    assert (await client.get("/api/v1/skills/minimax/nope.md")).status == 404


async def test_conditional_get(client: TestClient[web.Request, web.Application]) -> None:
    first = await client.get("/.well-known/agent-skills/index.json")
    again = await client.get(
        "/.well-known/agent-skills/index.json", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.status == 304
    assert await again.read() == b""


async def test_no_key_needed_even_with_a_bad_one(client: TestClient[web.Request, web.Application]) -> None:
    reply = await client.get("/api/v1/skills", headers={"Authorization": "Bearer wrong"})
    assert reply.status == 200


async def test_without_built_skills_the_routes_say_so(catalog: Catalog, database: Database) -> None:
    async with TestClient(TestServer(make_app(catalog, None, database), host="127.0.0.1")) as c:
        reply = await c.get("/llms.txt")
        assert reply.status == 500
        assert "not built" in (await reply.json())["error"]["message"]
