"""`runapi skills …`: list, install, verify and compare model skills (runapi-contract §11.5).

`install` downloads the skill from a running gateway and checks its sha256 digest against the
gateway's discovery index, or builds it locally from the catalog with `--offline`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import typer
from rich.console import JustifyMethod
from rich.table import Table

from runapi import __version__
from runapi.catalog import load_catalog
from runapi.catalog.loader import Catalog
from runapi.cli._run import ConfigOption, console, out, settings_from
from runapi.skills import SkillBundle, SkillCatalog, read_archive, verify_skill_dir
from runapi.skills.bundle import write_files

skills_app = typer.Typer(help="List, install, verify and compare model skills.", no_args_is_help=True)

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
_HTTP_TIMEOUT = 30.0
_MAX_DOWNLOAD = 16 * 1024 * 1024


class Target(StrEnum):
    claude = "claude"
    project = "project"
    codex = "codex"
    gemini = "gemini"
    openclaw = "openclaw"


BaseUrlOption = typer.Option(
    None, "--base-url", envvar="RUNAPI_BASE_URL", help=f"The gateway to ask (default {DEFAULT_BASE_URL})."
)
OfflineOption = typer.Option(
    False, "--offline", help="Build from the local catalog instead of asking a running gateway."
)


# --- commands ----------------------------------------------------------------------------------


@skills_app.command("list")
def list_skills(
    base_url: str | None = BaseUrlOption,
    offline: bool = OfflineOption,
    config: str | None = ConfigOption,
) -> None:
    """List the skills and the models each one covers."""
    if offline:
        skills = _local_skills(config, base_url)
        rows = [(b.name, b.version, list(b.models), b.summary) for b in skills.bundles.values()]
    else:
        listing = json.loads(_get(_base(base_url) + "/api/v1/skills"))
        rows = [(s["name"], s["version"], s["models"], s.get("summary", "")) for s in listing["data"]]
    table = Table(title="runapi skills")
    for column in ("skill", "version", "models", "about"):
        table.add_column(column)
    for name, version, models, summary in rows:
        table.add_row(name, version, "\n".join(models), summary)
    out.print(table)


@skills_app.command("install")
def install(
    model: str = typer.Argument(..., help="A model id or alias (or a skill name such as 'minimax')."),
    target: Target = typer.Option(Target.project, "--target", help="Where the agent looks for skills."),
    target_dir: Path | None = typer.Option(
        None,
        "--target-dir",
        help="Install into <dir>/<skill>/ (or into <dir> if it is named after the skill).",
    ),
    plugin: bool = typer.Option(False, "--plugin", help="Write the whole plugin repository (manifests too)."),
    force: bool = typer.Option(False, "--force", help="Replace an installed copy of the skill."),
    base_url: str | None = BaseUrlOption,
    offline: bool = OfflineOption,
    config: str | None = ConfigOption,
) -> None:
    """Install the skill of MODEL's family into an agent's skills folder (default: this repository's
    .claude/skills/)."""
    if offline:
        name, files = _local_files(_local_skills(config, base_url), model, plugin)
    else:
        name, files = _download(_base(base_url), model, plugin)
    dest = _destination(name, target, target_dir)
    _prepare(dest, force)
    write_files(dest, files)
    problems = verify_skill_dir(dest)
    for problem in problems:
        console.print(f"[yellow]warning:[/yellow] {problem}", soft_wrap=True)
    out.print(f"installed skill [bold]{name}[/bold] into {dest}", soft_wrap=True)
    for path in sorted(files):
        out.print(f"  {path}")


@skills_app.command("verify")
def verify(directory: Path = typer.Argument(..., help="A skill folder or a plugin repository.")) -> None:
    """Check a skill against the Agent Skills rules and runapi's manifest checks."""
    problems = verify_skill_dir(directory)
    if problems:
        for problem in problems:
            out.print(f"[red]✗[/red] {problem}", soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"[green]✓[/green] {directory} is a valid skill", soft_wrap=True)


@skills_app.command("compare")
def compare(
    family: str | None = typer.Option(None, "--family", help="Only this family (e.g. minimax)."),
    config: str | None = ConfigOption,
) -> None:
    """Compare every model variant: context, output cap, speed and prices per 1M tokens."""
    catalog = _local_catalog(config)
    table = Table(title="Model variants (USD per 1M tokens)")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("model", "left"),
        ("family", "left"),
        ("context", "right"),
        ("max output", "right"),
        ("speed", "left"),
        ("tok/s", "right"),
        ("input", "right"),
        ("output", "right"),
        ("cache read", "right"),
        ("cache write", "right"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for m in sorted(catalog, key=lambda m: (m.family, m.released or "", m.id)):
        if (family and m.family != family) or m.status == "disabled":
            continue
        p = m.prices
        table.add_row(
            m.id,
            m.family,
            f"{m.context_window:,}",
            f"{m.max_output:,}",
            m.speed_class,
            str(m.tokens_per_second or "-"),
            *(f"{v:f}" for v in (p.input, p.output, p.cache_read, p.cache_write)),
        )
    out.print(table)


# --- building locally --------------------------------------------------------------------------


def _local_catalog(config: str | None) -> Catalog:
    settings = settings_from(config)
    return load_catalog(settings.catalog_path, settings.models, settings.aliases)


def _local_skills(config: str | None, base_url: str | None) -> SkillCatalog:
    settings = settings_from(config)
    catalog = load_catalog(settings.catalog_path, settings.models, settings.aliases)
    return SkillCatalog(catalog, base_url or settings.base_url, surface_request_schemas(), __version__)


# The surfaces' wire request types, by endpoint (the same ones the app passes to SkillCatalog).
_SURFACE_REQUESTS = {
    "chat.completions": ("runapi.surfaces.openai_chat.wire", "ChatCompletionRequest"),
    "responses": ("runapi.surfaces.openai_responses.request", "ResponsesRequest"),
    "messages": ("runapi.surfaces.anthropic_messages.request", "MessagesRequest"),
}


def surface_request_schemas() -> dict[str, dict[str, Any]]:
    """The surfaces' request schemas, as the gateway builds them; the skills package's minimal ones
    only if the surfaces cannot be loaded."""
    provider = getattr(importlib.import_module("runapi.surfaces"), "request_json_schemas", None)
    if callable(provider):
        schemas: dict[str, dict[str, Any]] = provider()
        return schemas
    try:
        return {
            endpoint: msgspec.json.schema(getattr(importlib.import_module(module), name))
            for endpoint, (module, name) in _SURFACE_REQUESTS.items()
        }
    except (ImportError, AttributeError) as exc:
        from runapi.skills.fallback_schemas import fallback_request_schemas

        console.print(f"[yellow]note:[/yellow] using minimal request schemas ({exc}).")
        return fallback_request_schemas()


def _local_files(skills: SkillCatalog, model: str, plugin: bool) -> tuple[str, dict[str, bytes]]:
    bundle = skills.for_model(model)
    if bundle is None:
        known = ", ".join(sorted(skills.bundles))
        console.print(f"[red]error:[/red] no skill for {model!r} (skills: {known}).")
        raise typer.Exit(1)
    return bundle.name, _layout(bundle, plugin)


def _layout(bundle: SkillBundle, plugin: bool) -> dict[str, bytes]:
    return dict(bundle.files) if plugin else dict(bundle.skill_files)


# --- downloading -------------------------------------------------------------------------------


def _base(base_url: str | None) -> str:
    return (base_url or DEFAULT_BASE_URL).rstrip("/")


def _get(url: str) -> bytes:
    return _fetch(url)[0]


def _fetch(url: str) -> tuple[bytes, Mapping[str, str]]:
    request = urllib.request.Request(url, headers={"User-Agent": f"runapi-cli/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT) as reply:
            body: bytes = reply.read(_MAX_DOWNLOAD + 1)
            headers = {k.lower(): v for k, v in reply.headers.items()}
    except urllib.error.HTTPError as exc:
        detail = exc.read(2048).decode("utf-8", "replace")
        console.print(f"[red]error:[/red] {url}: HTTP {exc.code} {detail}")
        raise typer.Exit(1) from None
    except (urllib.error.URLError, OSError) as exc:
        console.print(
            f"[red]error:[/red] cannot reach {url}: {exc}. Is the gateway running? (or use --offline)"
        )
        raise typer.Exit(1) from None
    if len(body) > _MAX_DOWNLOAD:
        console.print(f"[red]error:[/red] {url}: response larger than {_MAX_DOWNLOAD} bytes")
        raise typer.Exit(1)
    return body, headers


def _download(base: str, model: str, plugin: bool) -> tuple[str, dict[str, bytes]]:
    """Fetch the skill archive and check its digest against the gateway's discovery index."""
    archive, headers = _fetch(f"{base}/v1/models/{quote(model, safe='')}/skill?layout=skill")
    name = headers.get("x-runapi-skill-name", "")
    index = json.loads(_get(f"{base}/.well-known/agent-skills/index.json"))
    entry = next((s for s in index.get("skills", []) if s.get("name") == name), None)
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    if entry is None or entry.get("digest") != digest:
        console.print(f"[red]error:[/red] the skill archive for {model!r} does not match the index digest.")
        raise typer.Exit(1)
    files = _unpack(archive)
    if not plugin:
        return name, files
    repo, _ = _fetch(f"{base}/v1/models/{quote(model, safe='')}/skill?layout=plugin")
    repo_files = {path.removeprefix(f"{name}/"): data for path, data in _unpack(repo).items()}
    # The plugin archive has no digest of its own: accept it only if its skill folder is the one
    # whose digest was just checked.
    prefix = f"skills/{name}/"
    if {p.removeprefix(prefix): d for p, d in repo_files.items() if p.startswith(prefix)} != files:
        console.print("[red]error:[/red] the plugin archive does not contain the verified skill.")
        raise typer.Exit(1)
    return name, repo_files


def _unpack(archive: bytes) -> dict[str, bytes]:
    try:
        return read_archive(archive)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] bad skill archive: {exc}")
        raise typer.Exit(1) from None


# --- writing -----------------------------------------------------------------------------------


def _destination(name: str, target: Target, target_dir: Path | None) -> Path:
    if target_dir is not None:
        base = target_dir.expanduser()
        return base if base.name == name else base / name
    if target is Target.project:
        return Path.cwd() / ".claude" / "skills" / name
    return Path.home() / f".{target.value}" / "skills" / name


def _prepare(dest: Path, force: bool) -> None:
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return
    if not force:
        console.print(f"[red]error:[/red] {dest} already exists; pass --force to replace it.")
        raise typer.Exit(1)
    # Only ever delete something that is recognisably a skill, never an arbitrary folder.
    if not dest.is_dir() or not ((dest / "SKILL.md").is_file() or (dest / ".claude-plugin").is_dir()):
        console.print(f"[red]error:[/red] {dest} does not look like an installed skill; not replacing it.")
        raise typer.Exit(1)
    shutil.rmtree(dest)
