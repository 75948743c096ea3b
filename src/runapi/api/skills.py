"""Model skills and docs for agents (runapi-contract §11.5): archives, discovery index, llms.txt.

These routes need no API key: skills are documentation, and the Agent Skills discovery and
llms.txt conventions expect anonymous GETs. They reveal nothing the public model list does not
(ids, limits, list prices, the gateway's own base URL). Everything is built once at startup
(`SkillCatalog` in `services.extras["skills"]`); a request is a dict lookup and a write.
"""

from __future__ import annotations

from aiohttp import web

from runapi.api.common import rendered_errors, services
from runapi.errors import InternalError, ModelNotFound, NotFound
from runapi.skills import SkillBundle, SkillCatalog
from runapi.skills.bundle import ArchiveFormat, Layout
from runapi.skills.skill_catalog import Document

EXTRAS_KEY = "skills"
_CACHE = "public, max-age=300"
_TYPES = {"tar.gz": "application/gzip", "zip": "application/zip"}
_FORMATS: dict[str, ArchiveFormat] = {"zip": "zip", "tar.gz": "tar.gz", "tgz": "tar.gz", "tar": "tar.gz"}
_FILE_TYPES = {
    ".md": "text/markdown; charset=utf-8",
    ".json": "application/json",
    ".py": "text/x-python; charset=utf-8",
}


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/models/{model_id}/skill", rendered_errors(model_skill)),
        web.get("/api/v1/skills", rendered_errors(list_skills)),
        web.get("/api/v1/skills/{name}.tar.gz", rendered_errors(skill_archive)),
        web.get("/api/v1/skills/{name}/{path:.+}", rendered_errors(skill_file)),
        web.get("/.well-known/agent-skills/index.json", rendered_errors(discovery_index)),
        web.get("/.well-known/agent-skills/v{version}/index.json", rendered_errors(versioned_index)),
        web.get("/llms.txt", rendered_errors(llms_txt)),
    ]


def _skills(request: web.Request) -> SkillCatalog:
    catalog = services(request).extras.get(EXTRAS_KEY)
    if not isinstance(catalog, SkillCatalog):
        raise InternalError("Skills are not built on this gateway.")
    return catalog


def _document(request: web.Request, doc: Document, content_type: str) -> web.Response:
    return _bytes(request, doc.body, content_type, doc.etag)


def _bytes(
    request: web.Request, body: bytes, content_type: str, etag: str, extra: dict[str, str] | None = None
) -> web.Response:
    headers = {"ETag": f'"{etag}"', "Cache-Control": _CACHE, **(extra or {})}
    if request.headers.get("If-None-Match") == headers["ETag"]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers={"Content-Type": content_type, **headers})


def _archive(request: web.Request, bundle: SkillBundle, layout: Layout, fmt: ArchiveFormat) -> web.Response:
    body = bundle.archive(layout, fmt)
    suffix = "" if layout == "skill" else "-plugin"
    filename = f"{bundle.name}{suffix}-{bundle.version}.{fmt}"
    extra = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-RunAPI-Skill-Name": bundle.name,
        "X-RunAPI-Skill-Version": bundle.version,
    }
    if layout == "skill" and fmt == "tar.gz":
        extra["X-RunAPI-Skill-Digest"] = f"sha256:{bundle.sha256}"
    return _bytes(request, body, _TYPES[fmt], bundle.digest(layout, fmt)[:32], extra)


def _wanted_format(request: web.Request) -> ArchiveFormat | None:
    asked = request.query.get("format")
    if asked is None:
        accept = request.headers.get("Accept", "")
        return "zip" if "application/zip" in accept and "application/gzip" not in accept else "tar.gz"
    return _FORMATS.get(asked)


async def model_skill(request: web.Request) -> web.Response:
    """The skill of a model's family: `?format=zip` or `Accept: application/zip` for a zip,
    `?layout=plugin` for the whole plugin repository instead of the skill folder."""
    skills = _skills(request)
    model_id = request.match_info["model_id"]
    bundle = skills.for_model(model_id)
    if bundle is None:
        raise ModelNotFound(f"The model '{model_id}' does not exist or has no skill.", param="model")
    fmt = _wanted_format(request)
    layout = request.query.get("layout", "skill")
    if fmt is None or layout not in ("skill", "plugin"):
        raise NotFound("Unknown format or layout: use format=tar.gz|zip, layout=skill|plugin.")
    return _archive(request, bundle, "plugin" if layout == "plugin" else "skill", fmt)


async def list_skills(request: web.Request) -> web.Response:
    skills = _skills(request)
    return _document(request, skills.listing, "application/json")


async def skill_archive(request: web.Request) -> web.Response:
    skills = _skills(request)
    name = request.match_info["name"]
    bundle = skills.bundle(name)
    pinned = request.query.get("version")
    if bundle is None or (pinned is not None and pinned != bundle.version):
        raise NotFound(f"No skill '{name}'" + (f" at version {pinned}." if pinned else "."))
    return _archive(request, bundle, "skill", "tar.gz")


async def skill_file(request: web.Request) -> web.Response:
    """One file of a skill folder, e.g. `/api/v1/skills/minimax/SKILL.md` (the `.md` docs mirror)."""
    skills = _skills(request)
    bundle = skills.bundle(request.match_info["name"])
    path = request.match_info["path"]
    body = bundle.skill_files.get(path) if bundle is not None else None
    if bundle is None or body is None:
        raise NotFound(f"No file '{path}' in skill '{request.match_info['name']}'.")
    suffix = path[path.rfind(".") :] if "." in path else ""
    content_type = _FILE_TYPES.get(suffix, "text/plain; charset=utf-8")
    return _bytes(request, body, content_type, f"{bundle.sha256[:32]}-{path}")


async def discovery_index(request: web.Request) -> web.Response:
    skills = _skills(request)
    return _document(request, skills.index, "application/json")


async def versioned_index(request: web.Request) -> web.Response:
    skills = _skills(request)
    version = request.match_info["version"]
    if version != skills.version:
        raise NotFound(f"No skill index for version {version}; this gateway serves {skills.version}.")
    return _document(request, skills.versioned_index, "application/json")


async def llms_txt(request: web.Request) -> web.Response:
    skills = _skills(request)
    return _document(request, skills.llms_txt, "text/plain; charset=utf-8")
