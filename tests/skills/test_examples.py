"""The runnable examples in SKILL.md can be found, compile, and carry no secrets."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from runapi.catalog import Catalog
from runapi.skills import SkillCatalog, extract_examples

EXPECTED = {
    "example-curl.sh": "bash",
    "example-openai.py": "python",
    "example-openai.mjs": "javascript",
    "example-responses.py": "python",
    "example-anthropic.py": "python",
    "example-anthropic.mjs": "javascript",
    "example-tools.py": "python",
    "example-stream.py": "python",
    "example-task.py": "python",
}


def test_extract_finds_every_runnable_example(skills: SkillCatalog) -> None:
    for bundle in skills.bundles.values():
        examples = extract_examples(bundle.skill_md)
        assert {e.name: e.language for e in examples} == EXPECTED


def test_illustrations_without_a_title_are_not_runnable() -> None:
    text = "```python\nprint('illustration')\n```\n\n```python title=run.py\nprint('run')\n```\n"
    [example] = extract_examples(text)
    assert (example.language, example.name, example.code) == ("python", "run.py", "print('run')\n")


def test_examples_use_the_environment_and_a_catalog_model(skills: SkillCatalog, catalog: Catalog) -> None:
    for bundle in skills.bundles.values():
        for example in extract_examples(bundle.skill_md):
            models = set(re.findall(r"""model["']?\s*[:=]\s*["']([^"']+)["']""", example.code))
            assert models, example.name
            assert models <= set(bundle.models), (example.name, models)
            assert all(catalog.get(m) is not None for m in models)
            prefix = "ANTHROPIC" if "anthropic" in example.name else "OPENAI"
            assert example.env_vars == (f"{prefix}_API_KEY", f"{prefix}_BASE_URL"), example.name
            assert not re.search(r"sk-[A-Za-z0-9]{8,}|whsec_[A-Za-z0-9]", example.code)
            caps = [
                int(v)
                for v in re.findall(r"max_(?:output_|completion_)?tokens\"?\s*[:=]\s*(\d+)", example.code)
            ]
            assert caps, example.name
            assert max(caps) <= 256, example.name


def test_python_examples_compile(skills: SkillCatalog) -> None:
    for bundle in skills.bundles.values():
        for example in extract_examples(bundle.skill_md):
            if example.language == "python":
                ast.parse(example.code, filename=example.name)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_shell_examples_parse(skills: SkillCatalog) -> None:
    for example in extract_examples(skills.bundles["minimax"].skill_md):
        if example.language == "bash":
            subprocess.run(["bash", "-n"], input=example.code, text=True, check=True)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_node_examples_parse(skills: SkillCatalog, tmp_path: Path) -> None:
    for example in extract_examples(skills.bundles["minimax"].skill_md):
        if example.language == "javascript":
            path = tmp_path / example.name
            path.write_text(example.code)
            subprocess.run(["node", "--check", str(path)], check=True, capture_output=True)
