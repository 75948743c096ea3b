"""Every runnable example in a generated SKILL.md runs against the real gateway and succeeds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runapi.catalog import load_catalog
from runapi.skills import build_skill, extract_examples
from runapi.surfaces import request_json_schemas
from tests.procs import Gateway

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def _examples(base_url: str) -> list[tuple[str, str, str]]:
    catalog = load_catalog()
    models = catalog.families()["minimax"]
    bundle = build_skill("minimax", models, base_url, request_json_schemas(), "0.1.0")
    skill_md = bundle.skill_files["SKILL.md"].decode()
    return [(e.name, e.language, e.code) for e in extract_examples(skill_md)]


EXAMPLES = _examples("http://127.0.0.1:8080")


def test_the_skill_has_runnable_examples_in_every_language() -> None:
    languages = {lang for _, lang, _ in EXAMPLES}
    assert {"bash", "python", "javascript"} <= languages
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize(("name", "language", "code"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_skill_example_runs(gateway: Gateway, name: str, language: str, code: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        OPENAI_BASE_URL=gateway.base_url,
        OPENAI_API_KEY=gateway.api_key,
        ANTHROPIC_BASE_URL=gateway.url,
        ANTHROPIC_API_KEY=gateway.api_key,
        RUNAPI_BASE_URL=gateway.url,
        RUNAPI_API_KEY=gateway.api_key,
    )
    if language == "bash":
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        command = ["bash", "-c", code]
        cwd = tmp_path
    elif language == "python":
        command = [sys.executable, "-c", code]
        cwd = tmp_path
    else:
        if shutil.which("node") is None:
            pytest.skip("Node.js is not installed")
        script = NODE_DIR / f"skill-{name}"
        script.write_text(code, encoding="utf-8")
        command = ["node", str(script)]
        cwd = NODE_DIR
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=90)
    finally:
        if language == "javascript":
            (NODE_DIR / f"skill-{name}").unlink(missing_ok=True)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{name} printed nothing"


def test_a_request_valid_by_the_skill_schema_is_accepted_and_a_violating_one_refused(
    gateway: Gateway,
) -> None:
    import json

    import jsonschema

    from runapi.skills.schema import endpoint_schema, request_def
    from tests.procs import http_json

    catalog = load_catalog()
    bundle = build_skill(
        "minimax", catalog.families()["minimax"], gateway.url, request_json_schemas(), "0.1.0"
    )
    document = json.loads(bundle.skill_files["references/schema.json"])
    schema = endpoint_schema(document, request_def("chat.completions"))
    good = {"model": "MiniMax-M2.7", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
    bad = {**good, "n": 2}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    auth = {"Authorization": f"Bearer {gateway.api_key}"}
    status, _, _ = http_json("POST", gateway.base_url + "/chat/completions", good, auth)
    assert status == 200
    status, _, body = http_json("POST", gateway.base_url + "/chat/completions", bad, auth)
    assert status == 400
    assert isinstance(body, dict)
    assert body["error"]["param"] == "n"
