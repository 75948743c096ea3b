"""House rules (house.md), enforced: a package imports only from floors below it (or its own).

The pipeline drives the surfaces through the codec protocol on floor 1 (`canonical/codec.py`), which
both sides import, so no arrow has to run back up."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "runapi"

FLOORS: dict[str, int] = {
    # floor 1: data and plumbing every other part stands on
    "canonical": 1,
    "catalog": 1,
    "limits": 1,
    "store": 1,
    "errors": 1,
    "settings": 1,
    "ids": 1,
    "metrics": 1,
    "simulator": 1,
    "server": 1,  # HTTP plumbing: the Exchange seam, aiohttp's adapter, the lean server
    # floor 2: one concern each, never calling each other's siblings on this floor
    "providers": 2,
    "billing": 2,
    "tasks": 2,
    "auth": 2,
    "skills": 2,
    # floor 3: the request path and the non-generation routes
    "services": 3,
    "pipeline": 3,
    "api": 3,
    # floor 4: client dialects and the console
    "surfaces": 4,
    "console": 4,
    # floor 5: the application that joins them
    "app": 5,
    "routes": 5,
    "wiring": 5,
    # floor 6: the command line
    "cli": 6,
}

# Floor-2 packages must not call each other: the pipeline orders them (house.md).
SIBLINGS_APART = {"billing", "tasks", "limits"}


def _package(module: str) -> str:
    return module.split(".")[0]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("runapi."):
                found.append(node.module.removeprefix("runapi."))
        elif isinstance(node, ast.Import):
            found += [a.name.removeprefix("runapi.") for a in node.names if a.name.startswith("runapi.")]
    return found


def test_every_package_has_a_floor() -> None:
    names = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if not p.name.startswith("__")}
    names.discard("py")  # py.typed
    assert names <= set(FLOORS), f"give these a floor in FLOORS: {names - set(FLOORS)}"


def test_imports_only_go_down() -> None:
    problems = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        own = rel.parts[0].removesuffix(".py")
        if own == "__init__" or own not in FLOORS:
            continue
        for target in _imports(path):
            other = _package(target)
            if other == own or other not in FLOORS:
                continue
            if FLOORS[other] > FLOORS[own]:
                problems.append(f"{rel} imports runapi.{target} (floor {FLOORS[other]} > {FLOORS[own]})")
            if own in SIBLINGS_APART and other in SIBLINGS_APART:
                problems.append(f"{rel} imports runapi.{target}: billing, tasks and limits stay apart")
    assert not problems, "\n".join(problems)


def test_the_simulator_stands_alone() -> None:
    for path in (SRC / "simulator").rglob("*.py"):
        outside = [t for t in _imports(path) if _package(t) != "simulator"]
        assert not outside, f"{path.name} imports {outside}"
