"""Fixtures: the shipped catalog, request schemas, and the skills built from them."""

from __future__ import annotations

from typing import Any

import pytest

from runapi.catalog import Catalog, load_catalog
from runapi.cli.skills import surface_request_schemas
from runapi.skills import SkillCatalog
from runapi.skills.fallback_schemas import fallback_request_schemas

BASE_URL = "http://gateway.test:8080"
VERSION = "0.1.0"


def _surface_schemas() -> dict[str, dict[str, Any]]:
    """What the app passes in production: the schemas of the surfaces' own wire request types."""
    return surface_request_schemas()


SCHEMA_SOURCES = {"fallback": fallback_request_schemas, "surfaces": _surface_schemas}


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session", params=sorted(SCHEMA_SOURCES))
def request_schemas(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    return SCHEMA_SOURCES[request.param]()


@pytest.fixture(scope="session")
def skills(catalog: Catalog, request_schemas: dict[str, dict[str, Any]]) -> SkillCatalog:
    return SkillCatalog(catalog, BASE_URL, request_schemas, VERSION)
