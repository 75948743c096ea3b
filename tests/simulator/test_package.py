"""The simulator stands alone and exposes a curated surface."""

from __future__ import annotations

import ast
from pathlib import Path

import runapi.simulator
from runapi.simulator import SimConfig, cli_options, config_from_options

PACKAGE = Path(runapi.simulator.__file__).parent


def test_imports_nothing_else_from_runapi() -> None:
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name} reaches outside the package"
                module = node.module or ""
            elif isinstance(node, ast.Import):
                module = ",".join(alias.name for alias in node.names)
            else:
                continue
            for name in module.split(","):
                assert not name.startswith("runapi") or name.startswith("runapi.simulator"), (path.name, name)


def test_public_surface() -> None:
    for name in runapi.simulator.__all__:
        assert getattr(runapi.simulator, name) is not None
    for name in ("build_app", "run", "SimConfig", "count_prompt_tokens", "cli_options"):
        assert name in runapi.simulator.__all__


def test_cli_options_cover_the_config() -> None:
    fields = {o.field for o in cli_options}
    assert {"host", "port", "ttft_ms", "tps", "error_rate", "api_key", "chunk_tokens", "seed"} <= fields
    config = config_from_options({"host": "x", "port": 1, "tps": 5.0, "omit_done": True})
    assert config == SimConfig(tps=5.0, omit_done=True)
