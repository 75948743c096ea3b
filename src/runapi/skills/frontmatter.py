"""`SKILL.md` front matter: write it safely, read it back for checks (runapi-contract §11.2).

Writing: strings go out JSON-quoted (valid YAML double-quoted scalars), so a colon or a `#` in a
description can never change the document. Reading: the YAML subset skills use in practice (plain,
quoted and block scalars, one level of mapping, lists). It needs no YAML library; anything beyond
the subset is reported, not guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# runapi-contract §11.4, the CI check RunAPI's skill repos run.
FRONT_MATTER_RE = re.compile(r"^---\n[\s\S]*?^name:\s*\S+[\s\S]*?^description:\s*\S+[\s\S]*?^---$", re.M)

_KEY_LINE = re.compile(r"^([A-Za-z0-9_-]+):(?:\s+(.*))?$")
_PLAIN_NON_STRING = re.compile(
    r"^(?:[-+]?\d+|[-+]?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|true|false|True|False|TRUE|FALSE|null|Null|NULL|~)$"
)

Scalar = str | int | float | bool | None
Value = Scalar | list[Scalar] | dict[str, Scalar]


@dataclass(frozen=True)
class FrontMatter:
    name: str
    description: str
    license: str | None = None
    compatibility: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> str:
        lines = ["---", f"name: {self.name}", f"description: {_quote(self.description)}"]
        if self.license is not None:
            lines.append(f"license: {_quote(self.license)}")
        if self.compatibility is not None:
            lines.append(f"compatibility: {_quote(self.compatibility)}")
        if self.metadata:
            lines.append("metadata:")
            lines.extend(f"  {key}: {_quote(value)}" for key, value in self.metadata.items())
        lines.append("---")
        return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


class FrontMatterError(ValueError):
    pass


def split_front_matter(text: str) -> tuple[str, str]:
    """(front matter without the fences, body). Raises when there is no closed front matter."""
    if not text.startswith("---\n"):
        raise FrontMatterError("SKILL.md must start with a '---' line")
    end = re.search(r"^---[ \t]*$", text[4:], re.M)
    if end is None:
        raise FrontMatterError("front matter is not closed by a '---' line")
    return text[4 : 4 + end.start()], text[4 + end.end() :].lstrip("\n")


def parse_front_matter(block: str) -> dict[str, Value]:
    lines = block.split("\n")
    out: dict[str, Value] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        if line[0] in " \t":
            raise FrontMatterError(f"unexpected indentation: {line.strip()!r}")
        match = _KEY_LINE.match(line.rstrip())
        if match is None:
            raise FrontMatterError(f"not a 'key: value' line: {line!r}")
        key, raw = match.group(1), (match.group(2) or "").strip()
        if key in out:
            raise FrontMatterError(f"duplicate key {key!r}")
        block_lines, i = _indented_block(lines, i + 1)
        if raw and raw[0] in "|>":
            out[key] = _block_scalar(raw, block_lines)
        elif raw:
            if block_lines:
                raise FrontMatterError(f"{key!r} has both a value and an indented block")
            out[key] = _flow_value(raw)
        elif block_lines:
            out[key] = _nested(key, block_lines)
        else:
            out[key] = None
    return out


def _indented_block(lines: list[str], start: int) -> tuple[list[str], int]:
    end = start
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t"):
        end += 1
    block = lines[start:end]
    while block and not block[-1].strip():
        block.pop()
        end -= 1
    return block, end


def _block_scalar(indicator: str, block: list[str]) -> str:
    indent = min((len(b) - len(b.lstrip()) for b in block if b.strip()), default=0)
    rows = [b[indent:] for b in block]
    text = "\n".join(rows) if indicator[0] == "|" else _fold(rows)
    return text if indicator.endswith("-") else text + "\n"


def _fold(rows: list[str]) -> str:
    paragraphs: list[list[str]] = [[]]
    for row in rows:
        if row.strip():
            paragraphs[-1].append(row.strip())
        else:
            paragraphs.append([])
    return "\n".join(" ".join(p) for p in paragraphs)


def _nested(key: str, block: list[str]) -> list[Scalar] | dict[str, Scalar]:
    items = [b.strip() for b in block if b.strip() and not b.strip().startswith("#")]
    if all(item.startswith("- ") or item == "-" for item in items):
        return [_scalar(item[1:].strip()) for item in items]
    mapping: dict[str, Scalar] = {}
    for item in items:
        match = _KEY_LINE.match(item)
        if match is None:
            raise FrontMatterError(f"{key!r}: not a 'key: value' line: {item!r}")
        sub_key, raw = match.group(1), (match.group(2) or "").strip()
        if not raw:
            raise FrontMatterError(f"{key}.{sub_key} is nested deeper than one level")
        mapping[sub_key] = _scalar(raw)
    return mapping


def _flow_value(raw: str) -> Value:
    if raw.startswith("[") and raw.endswith("]"):
        inner = raw[1:-1].strip()
        return [_scalar(part.strip()) for part in inner.split(",")] if inner else []
    if raw.startswith("{"):
        raise FrontMatterError(f"flow mappings are not supported: {raw!r}")
    return _scalar(raw)


def _scalar(raw: str) -> Scalar:
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise FrontMatterError(f"bad double-quoted string: {raw!r}") from exc
        if not isinstance(value, str):
            raise FrontMatterError(f"bad double-quoted string: {raw!r}")
        return value
    if raw.startswith("'"):
        if len(raw) < 2 or not raw.endswith("'"):
            raise FrontMatterError(f"bad single-quoted string: {raw!r}")
        return raw[1:-1].replace("''", "'")
    plain = raw.split(" #", 1)[0].strip()
    if _PLAIN_NON_STRING.match(plain):
        # YAML reads these as numbers, booleans or null, not strings; say so to the checks.
        return _typed(plain)
    return plain


def _typed(plain: str) -> Scalar:
    low = plain.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "~"):
        return None
    try:
        return int(plain)
    except ValueError:
        return float(plain)
