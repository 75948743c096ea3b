"""Load the shipped catalog, apply the user's overrides, resolve aliases."""

from __future__ import annotations

import tomllib
from datetime import datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from runapi.errors import ModelNotFound


class Prices(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """USD per 1M tokens, exact decimals. In micro-dollars a token costs exactly this number."""

    input: Decimal
    output: Decimal
    cache_read: Decimal = Decimal(0)
    cache_write: Decimal = Decimal(0)


class InputTier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    above_input_tokens: int
    input: Decimal
    output: Decimal
    cache_read: Decimal = Decimal(0)
    cache_write: Decimal = Decimal(0)

    @property
    def prices(self) -> Prices:
        return Prices(
            input=self.input, output=self.output, cache_read=self.cache_read, cache_write=self.cache_write
        )


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    family: str
    upstream: str
    upstream_model: str | None = None  # the id the upstream knows, when it differs
    released: str | None = None
    context_window: int
    max_output: int
    hold_output_cap: int | None = None
    speed_class: str
    tokens_per_second: int | None = None
    model_class: str
    capabilities: tuple[str, ...] = ()
    prices: Prices
    input_tiers: tuple[InputTier, ...] = ()
    effective_from: datetime
    status: str = "active"  # active | maintenance | disabled

    @property
    def wire_model(self) -> str:
        return self.upstream_model or self.id

    @property
    def output_cap_for_hold(self) -> int:
        return self.hold_output_cap or self.max_output

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def prices_for(self, input_tokens: int) -> Prices:
        chosen = self.prices
        for tier in sorted(self.input_tiers, key=lambda t: t.above_input_tokens):
            if input_tokens > tier.above_input_tokens:
                chosen = tier.prices
        return chosen


class Catalog:
    """Immutable after load: lookups on the hot path are one dict access."""

    def __init__(self, models: list[ModelEntry], aliases: dict[str, str]) -> None:
        self.models: dict[str, ModelEntry] = {m.id: m for m in models}
        self.aliases = dict(aliases)
        self._lookup: dict[str, ModelEntry] = dict(self.models)
        for alias, target in aliases.items():
            if target in self.models:
                self._lookup[alias] = self.models[target]
        # Clients vary the case of model ids ("minimax-m2.7"); accept it.
        for name, entry in list(self._lookup.items()):
            self._lookup.setdefault(name.lower(), entry)

    def resolve(self, name: str) -> ModelEntry:
        entry = self._lookup.get(name) or self._lookup.get(name.lower())
        if entry is None or entry.status == "disabled":
            raise ModelNotFound(
                f"The model '{name}' does not exist or you do not have access to it.", param="model"
            )
        return entry

    def get(self, name: str) -> ModelEntry | None:
        try:
            return self.resolve(name)
        except ModelNotFound:
            return None

    def __iter__(self) -> Any:
        return iter(self.models.values())

    def families(self) -> dict[str, list[ModelEntry]]:
        out: dict[str, list[ModelEntry]] = {}
        for model in self.models.values():
            out.setdefault(model.family, []).append(model)
        return out


def _read_shipped() -> dict[str, Any]:
    text = resources.files("runapi.catalog").joinpath("models.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_catalog(
    catalog_path: str | None = None,
    overrides: list[dict[str, Any]] | None = None,
    aliases: dict[str, str] | None = None,
) -> Catalog:
    data = tomllib.loads(Path(catalog_path).read_text(encoding="utf-8")) if catalog_path else _read_shipped()
    defaults: dict[str, Any] = data.get("defaults", {})
    raw_models: dict[str, dict[str, Any]] = {}
    for raw in data.get("models", []):
        raw_models[raw["id"]] = {**defaults, **raw}
    for raw in overrides or []:
        base = raw_models.get(raw["id"], dict(defaults))
        merged = {**base, **raw}
        if "prices" in raw and "prices" in base:
            merged["prices"] = {**base["prices"], **raw["prices"]}
        raw_models[raw["id"]] = merged
    models = [msgspec.convert(r, ModelEntry, strict=False) for r in raw_models.values()]
    all_aliases = {**data.get("aliases", {}), **(aliases or {})}
    return Catalog(models, all_aliases)
