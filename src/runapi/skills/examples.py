"""Find the runnable examples in a `SKILL.md`, so a test can run them against a real gateway.

A runnable example is a fenced code block whose info string names a file:
```` ```python title=example-openai.py ````. Snippets without a `title=` are illustrations (for
instance a webhook receiver that needs a public URL) and are never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RUNNABLE_BLOCK = re.compile(
    r"^```(?P<lang>[A-Za-z0-9_+-]+)[ \t]+title=(?P<name>[A-Za-z0-9_.-]+)[^\n]*\n(?P<code>.*?)^```[ \t]*$",
    re.M | re.S,
)


@dataclass(frozen=True)
class Example:
    language: str  # the info string's language: bash, python, javascript
    name: str  # file name to write it to, e.g. example-openai.py
    code: str

    @property
    def env_vars(self) -> tuple[str, ...]:
        """The environment variables the example reads (it never carries a key itself)."""
        found = re.findall(r"\b((?:OPENAI|ANTHROPIC|RUNAPI)_[A-Z_]+)\b", self.code)
        return tuple(sorted(set(found)))


def extract_examples(skill_md: str) -> list[Example]:
    return [
        Example(language=m.group("lang"), name=m.group("name"), code=m.group("code"))
        for m in _RUNNABLE_BLOCK.finditer(skill_md)
    ]
