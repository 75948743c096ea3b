"""Suite-wide fixtures: the real simulator and real gateways on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import (
    Gateway,
    Proc,
    drop_postgres,
    fresh_postgres_url,
    gateway_env,
    running_gateway,
    sqlite_url,
    start_simulator,
)

# `db`: a fresh database per test, on SQLite and PostgreSQL (tests/databases.py).
pytest_plugins = ["tests.databases"]

POSTGRES_URL = os.environ.get("RUNAPI_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("RUNAPI_TEST_REDIS_URL")
BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


@pytest.fixture(scope="session")
def simulator() -> Iterator[Proc]:
    proc = start_simulator()
    yield proc
    proc.stop()


def database_for(backend: str, tmp: Path) -> str:
    if backend == "postgres":
        assert POSTGRES_URL is not None
        return fresh_postgres_url(POSTGRES_URL)
    return sqlite_url(tmp)


@pytest.fixture(scope="session", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, simulator: Proc, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """One gateway per database backend, on the simulator, shared by the session's tests."""
    backend: str = request.param
    url = database_for(backend, tmp_path_factory.mktemp(f"gw-{backend}"))
    env = gateway_env(url, simulator.url)
    with running_gateway(env, "100") as gw:
        yield gw
    if backend == "postgres":
        drop_postgres(url)


@pytest.fixture(params=BACKENDS)
def own_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own, on each backend, for a test that starts its own gateways."""
    backend: str = request.param
    url = database_for(backend, tmp_path)
    yield url
    if backend == "postgres":
        drop_postgres(url)
