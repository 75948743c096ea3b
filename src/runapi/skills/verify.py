"""Check a skill folder or plugin repository against runapi-contract §11.2 and §11.4.

`verify_skill_dir(path)` returns a list of problems; an empty list means valid. `path` is either a
skill folder (`SKILL.md` at its root) or a plugin repository (the three manifests and `skills/`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

from runapi.skills.frontmatter import (
    FRONT_MATTER_RE,
    FrontMatterError,
    parse_front_matter,
    split_front_matter,
)
from runapi.skills.generator import DESCRIPTION_MAX, SEMVER_RE

MANIFESTS = (".claude-plugin/plugin.json", ".codex-plugin/plugin.json", "gemini-extension.json")
NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
NAME_MAX = 64
COMPATIBILITY_MAX = 500
BODY_MAX_LINES = 500
# The Agent Skills spec fields; anything else at the top level is outside the spec.
KNOWN_FIELDS = frozenset({"name", "description", "license", "compatibility", "metadata", "allowed-tools"})
_FENCED_BLOCK = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
_MD_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def verify_skill_dir(path: str | Path) -> list[str]:
    root = Path(path)
    if not root.is_dir():
        return [f"{root}: not a directory"]
    if (root / "SKILL.md").is_file():
        return _verify_skill(root, label="")
    if any((root / m).exists() for m in MANIFESTS) or (root / "skills").is_dir():
        return _verify_plugin(root)
    return [f"{root}: neither a skill folder (SKILL.md) nor a plugin repository (manifests + skills/)"]


# --- plugin repository -------------------------------------------------------------------------


def _verify_plugin(root: Path) -> list[str]:
    problems: list[str] = []
    versions: dict[str, str] = {}
    skill_paths: set[str] = set()
    for rel in MANIFESTS:
        manifest = _load_json(root / rel, rel, problems)
        if manifest is None:
            continue
        if not isinstance(manifest, dict):
            problems.append(f"{rel}: must be a JSON object")
            continue
        for key in ("name", "description"):
            if not isinstance(manifest.get(key), str) or not manifest[key].strip():
                problems.append(f"{rel}: '{key}' must be a non-empty string")
        version = manifest.get("version")
        if not isinstance(version, str) or not SEMVER_RE.match(version):
            problems.append(f"{rel}: 'version' must be a semver string, got {version!r}")
        else:
            versions[rel] = version
        skills = manifest.get("skills")
        if not isinstance(skills, list) or not skills:
            problems.append(f"{rel}: 'skills' must be a non-empty list")
            continue
        for i, item in enumerate(skills):
            skill_path = item.get("path") if isinstance(item, dict) else None
            problem = _skill_path_problem(skill_path)
            if problem:
                problems.append(f"{rel}: skills[{i}].path {problem}")
            elif isinstance(skill_path, str):
                skill_paths.add(skill_path)
    if len(set(versions.values())) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in versions.items())
        problems.append(f"manifest versions differ: {listed}")
    for skill_path in sorted(skill_paths):
        skill_md = root / skill_path
        if not skill_md.is_file():
            problems.append(f"{skill_path}: listed in a manifest but missing")
            continue
        problems.extend(_verify_skill(skill_md.parent, label=f"{skill_md.parent.relative_to(root)}/"))
    return problems


def _skill_path_problem(path: Any) -> str | None:
    if not isinstance(path, str):
        return "must be a string"
    if not path.startswith("skills/") or not path.endswith("/SKILL.md"):
        return f"{path!r} must start with 'skills/' and end with '/SKILL.md'"
    if ".." in PurePosixPath(path).parts or "\\" in path:
        return f"{path!r} must not contain '..'"
    return None


# --- one skill folder --------------------------------------------------------------------------


def _verify_skill(folder: Path, *, label: str) -> list[str]:
    problems: list[str] = []
    where = f"{label}SKILL.md"
    text = (folder / "SKILL.md").read_text(encoding="utf-8", errors="replace")
    if not FRONT_MATTER_RE.search(text):
        problems.append(f"{where}: front matter does not match the required pattern (name, description)")
    try:
        block, body = split_front_matter(text)
        fields = parse_front_matter(block)
    except FrontMatterError as exc:
        return [*problems, f"{where}: {exc}"]
    problems.extend(f"{where}: {p}" for p in _field_problems(fields, folder.resolve().name))
    if body.count("\n") > BODY_MAX_LINES:
        problems.append(f"{where}: body has more than {BODY_MAX_LINES} lines")
    problems.extend(f"{where}: {p}" for p in _link_problems(body, folder))
    problems.extend(f"{label}{p}" for p in _reference_problems(folder))
    return problems


def _field_problems(fields: dict[str, Any], folder_name: str) -> list[str]:
    problems = [f"unknown front matter field {key!r}" for key in sorted(set(fields) - KNOWN_FIELDS)]
    name = fields.get("name")
    if not isinstance(name, str) or not name:
        problems.append("'name' is required and must be a string")
    else:
        if len(name) > NAME_MAX:
            problems.append(f"'name' is longer than {NAME_MAX} characters")
        if not NAME_RE.match(name):
            problems.append(f"'name' {name!r} must be lowercase letters, digits and single inner hyphens")
        if name != folder_name:
            problems.append(f"'name' {name!r} must equal the folder name {folder_name!r}")
    description = fields.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append("'description' is required and must be a non-empty string")
    elif len(description) > DESCRIPTION_MAX:
        problems.append(f"'description' is {len(description)} characters (max {DESCRIPTION_MAX})")
    if "license" in fields and not isinstance(fields["license"], str):
        problems.append("'license' must be a string")
    compat = fields.get("compatibility")
    if "compatibility" in fields and (
        not isinstance(compat, str) or not 1 <= len(compat) <= COMPATIBILITY_MAX
    ):
        problems.append(f"'compatibility' must be a string of 1-{COMPATIBILITY_MAX} characters")
    metadata = fields.get("metadata")
    if "metadata" in fields:
        if not isinstance(metadata, dict):
            problems.append("'metadata' must be a mapping of strings to strings")
        else:
            problems.extend(
                f"metadata.{key} must be a string (quote it), got {type(value).__name__}"
                for key, value in metadata.items()
                if not isinstance(value, str)
            )
    tools = fields.get("allowed-tools")
    if "allowed-tools" in fields and not (
        isinstance(tools, str) or (isinstance(tools, list) and all(isinstance(t, str) for t in tools))
    ):
        problems.append("'allowed-tools' must be a string or a list of strings")
    return problems


def _link_problems(body: str, folder: Path) -> list[str]:
    """Relative links must stay inside the skill and go at most one folder deep."""
    problems = []
    prose = _FENCED_BLOCK.sub("", body)  # code is not navigation
    for target in _MD_LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            continue  # absolute URL, anchor or site path
        rel = target.split("#", 1)[0]
        parts = PurePosixPath(rel).parts
        if ".." in parts:
            problems.append(f"link {target!r} leaves the skill folder")
        elif len(parts) > 2:
            problems.append(f"link {target!r} is more than one folder deep")
        elif not (folder / rel).exists():
            problems.append(f"link {target!r} points to a missing file")
    return problems


def _reference_problems(folder: Path) -> list[str]:
    problems: list[str] = []
    refs = folder / "references"
    if refs.is_dir():
        problems.extend(
            f"references/{sub.name}: references must be one level deep (no subfolders)"
            for sub in sorted(refs.iterdir())
            if sub.is_dir()
        )
    schema_file = refs / "schema.json"
    if schema_file.is_file():
        schema = _load_json(schema_file, "references/schema.json", problems)
        if schema is not None:
            problems.extend(f"references/schema.json: {p}" for p in _schema_problems(schema))
    scripts = folder / "scripts"
    if scripts.is_dir():
        for script in sorted(scripts.glob("*.py")):
            try:
                compile(script.read_bytes(), str(script), "exec")
            except SyntaxError as exc:
                problems.append(f"scripts/{script.name}: syntax error: {exc.msg} (line {exc.lineno})")
    return problems


def _schema_problems(schema: Any) -> list[str]:
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
    except ImportError:  # pragma: no cover - jsonschema is a runtime dependency
        return ["cannot check: the 'jsonschema' package is not installed"]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [f"not a valid Draft 2020-12 JSON Schema: {exc.message}"]
    return []


def _load_json(path: Path, rel: str, problems: list[str]) -> Any:
    if not path.is_file():
        problems.append(f"{rel}: missing")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        problems.append(f"{rel}: not valid JSON ({exc})")
        return None
