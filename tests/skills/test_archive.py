"""Archives are deterministic, safe, and match the digests the discovery index publishes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from typing import Any

import pytest

from runapi.catalog import Catalog
from runapi.skills import SkillCatalog, read_archive
from runapi.skills.bundle import Layout

from .conftest import BASE_URL, VERSION


def test_same_inputs_give_the_same_bytes(
    catalog: Catalog, request_schemas: dict[str, dict[str, Any]]
) -> None:
    first = SkillCatalog(catalog, BASE_URL, request_schemas, VERSION)
    second = SkillCatalog(catalog, BASE_URL, request_schemas, VERSION)
    layouts: tuple[Layout, ...] = ("skill", "plugin")
    for name, bundle in first.bundles.items():
        other = second.bundles[name]
        for layout in layouts:
            assert bundle.to_tar_gz(layout) == other.to_tar_gz(layout)
            assert bundle.to_zip(layout) == other.to_zip(layout)
    assert first.index.body == second.index.body


def test_index_digests_match_the_archives(skills: SkillCatalog) -> None:
    index = json.loads(skills.index.body)
    assert index["$schema"] == "https://schemas.agentskills.io/discovery/0.2.0/schema.json"
    assert [s["name"] for s in index["skills"]] == sorted(skills.bundles)
    for entry in index["skills"]:
        bundle = skills.bundles[entry["name"]]
        assert entry["type"] == "archive"
        assert entry["version"] == VERSION
        assert entry["url"] == f"{BASE_URL}/api/v1/skills/{bundle.name}.tar.gz"
        assert entry["digest"] == "sha256:" + hashlib.sha256(bundle.to_tar_gz()).hexdigest()
        assert entry["description"] == bundle.description
    pinned = json.loads(skills.versioned_index.body)
    assert [s["url"] for s in pinned["skills"]] == [f"{s['url']}?version={VERSION}" for s in index["skills"]]
    assert [s["digest"] for s in pinned["skills"]] == [s["digest"] for s in index["skills"]]


def test_tar_has_skill_md_at_the_root_and_no_escaping_paths(skills: SkillCatalog) -> None:
    bundle = skills.bundles["minimax"]
    raw = bundle.to_tar_gz()
    assert gzip.decompress(raw)  # a plain gzip stream
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert "SKILL.md" in names
    assert names == sorted(names)
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
    files = {m.name: m for m in members if m.isfile()}
    assert set(files) == set(bundle.skill_files)
    assert all(m.mtime == members[0].mtime and m.uid == 0 and m.uname == "" for m in members)
    assert files["scripts/verify_webhook.py"].mode == 0o755
    assert files["SKILL.md"].mode == 0o644


def test_plugin_archive_is_rooted_in_the_skill_folder(skills: SkillCatalog) -> None:
    bundle = skills.bundles["local"]
    files = read_archive(bundle.to_tar_gz("plugin"))
    assert set(files) == {f"local/{p}" for p in bundle.files}
    assert files["local/skills/local/SKILL.md"] == bundle.files["skills/local/SKILL.md"]


def test_zip_holds_the_same_files(skills: SkillCatalog) -> None:
    bundle = skills.bundles["minimax"]
    with zipfile.ZipFile(io.BytesIO(bundle.to_zip())) as archive:
        assert archive.namelist() == sorted(bundle.skill_files)
        assert archive.testzip() is None
    assert read_archive(bundle.to_zip()) == bundle.skill_files
    assert read_archive(bundle.to_tar_gz()) == bundle.skill_files


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buf.getvalue()


def test_reading_refuses_escaping_paths_and_links() -> None:
    escaping = tarfile.TarInfo("../evil.sh")
    escaping.size = 1
    with pytest.raises(ValueError, match="unsafe"):
        read_archive(_tar_with(escaping, b"x"))
    link = tarfile.TarInfo("SKILL.md")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(ValueError, match="not a regular file"):
        read_archive(_tar_with(link))
    with pytest.raises(ValueError, match=r"not a tar\.gz or zip"):
        read_archive(b"plain text")
