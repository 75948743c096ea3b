"""The offline default: a gateway with no upstream serves the embedded SmolLM2 model."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.procs import Gateway, gateway_env, http_json, running_gateway, sqlite_url

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.local_model

ROOT = Path(__file__).resolve().parents[2]
MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """No MiniMax upstream at all: what `make serve` gives a fresh install."""
    env = gateway_env(sqlite_url(tmp_path_factory.mktemp("offline")), None)
    with running_gateway(env, "0") as gw:
        yield gw


def _readme_curl() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```sh\n(curl .*?)```", text, re.S)
    assert match, "README has no curl example"
    return match.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_gets_text_from_the_model_with_exact_usage(offline: Gateway) -> None:
    command = (
        _readme_curl().replace("http://127.0.0.1:8080", offline.url).replace("$RUNAPI_KEY", offline.api_key)
    )
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    text = body["choices"][0]["message"]["content"]
    assert isinstance(text, str)
    assert text.strip()
    usage = body["usage"]
    assert usage["completion_tokens"] > 0
    # The prompt count is the model's own tokenizer over the rendered chat template.
    messages = json.loads(re.search(r"-d '(.*)'", command, re.S).group(1))["messages"]  # type: ignore[union-attr]
    counted = anthropic.Anthropic(base_url=offline.url, api_key=offline.api_key).messages.count_tokens(
        model=MODEL, messages=messages
    )
    assert usage["prompt_tokens"] == counted.input_tokens
    assert usage["cost"] == 0


def test_streaming_yields_tokens_incrementally(offline: Gateway) -> None:
    client = openai.OpenAI(base_url=offline.base_url, api_key=offline.api_key, max_retries=0)
    stamps: list[float] = []
    pieces: list[str] = []
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count from one to twenty in words."}],
        max_tokens=48,
        temperature=0,
        stream=True,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            stamps.append(time.monotonic())
    assert len(pieces) > 5
    assert stamps[0] < stamps[-1], "the first token must arrive before the last"
    assert "".join(pieces).strip()


def test_minimax_model_without_upstream_is_a_clear_503(offline: Gateway) -> None:
    status, _, body = http_json(
        "POST",
        offline.base_url + "/chat/completions",
        {"model": "MiniMax-M2.7", "messages": [{"role": "user", "content": "hi"}]},
        {"Authorization": f"Bearer {offline.api_key}"},
    )
    assert status == 503
    assert isinstance(body, dict)
    assert "MINIMAX_API_KEY" in body["error"]["message"]
    assert "runapi simulate" in body["error"]["message"]
    with pytest.raises(anthropic.APIStatusError) as info:
        anthropic.Anthropic(base_url=offline.url, api_key=offline.api_key, max_retries=0).messages.create(
            model="MiniMax-M2.7", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 503
    assert "MINIMAX_API_KEY" in str(info.value.body)
