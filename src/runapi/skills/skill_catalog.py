"""All skills of one gateway, built once at startup and served as precomputed bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runapi.catalog import Catalog
from runapi.skills.bundle import SkillBundle
from runapi.skills.generator import build_skill
from runapi.skills.index import discovery_index, llms_txt, skill_listing


@dataclass(frozen=True)
class Document:
    """A served document: its bytes and an ETag derived from them."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Document:
        return cls(body=body, etag=hashlib.sha256(body).hexdigest()[:32])

    @classmethod
    def of_json(cls, obj: Any) -> Document:
        return cls.of((json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


class SkillCatalog:
    """One skill per catalog family, plus the index documents that describe them.

    Construction does all the work (rendering, schemas, archives, digests); afterwards every
    lookup is a dict access, so the routes do no per-request work.
    """

    def __init__(
        self,
        catalog: Catalog,
        base_url: str,
        request_schemas: Mapping[str, Mapping[str, Any]],
        version: str,
        *,
        response_schemas: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.catalog = catalog
        self.base_url = base_url.rstrip("/")
        self.version = version
        self.bundles: dict[str, SkillBundle] = {}
        self._by_family: dict[str, SkillBundle] = {}
        for family, models in sorted(catalog.families().items()):
            if all(m.status == "disabled" for m in models):
                continue
            bundle = build_skill(
                family,
                models,
                self.base_url,
                request_schemas,
                version,
                response_schemas=response_schemas,
                aliases=catalog.aliases,
            )
            if bundle.name in self.bundles:
                raise ValueError(
                    f"families {family!r} and {self.bundles[bundle.name].family!r} share a skill name"
                )
            self.bundles[bundle.name] = bundle
            self._by_family[family] = bundle
        ordered = list(self.bundles.values())
        for bundle in ordered:  # build the archives and digests now, not on the first request
            bundle.to_tar_gz()
        self.index = Document.of_json(discovery_index(ordered, self.base_url))
        self.versioned_index = Document.of_json(discovery_index(ordered, self.base_url, pinned=True))
        self.listing = Document.of_json(skill_listing(ordered, self.base_url))
        self.llms_txt = Document.of(llms_txt(ordered, catalog, self.base_url, version).encode("utf-8"))

    def bundle(self, name: str) -> SkillBundle | None:
        return self.bundles.get(name)

    def for_model(self, name: str) -> SkillBundle | None:
        """The skill of a model id or alias (any case), or a skill/family name as a fallback."""
        entry = self.catalog.get(name)
        if entry is not None:
            return self._by_family.get(entry.family)
        return self.bundles.get(name) or self._by_family.get(name)
