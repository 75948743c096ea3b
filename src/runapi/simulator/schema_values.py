"""Deterministic JSON values that validate against a tool's ``parameters`` JSON Schema.

Covers what tool schemas use in practice: ``type`` (also as a list), ``const``, ``enum``,
``properties``/``required``, ``items``/``prefixItems``, ``minItems``/``maxItems``, string
lengths and common ``format``s, numeric bounds and ``multipleOf``, ``anyOf``/``oneOf``/``allOf``
(first branch), and local ``$ref``. ``pattern`` is not honoured.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from .vocabulary import WORDS

__all__ = ["value_for_schema"]

_MAX_DEPTH = 8
_FORMATS: Mapping[str, str] = {
    "date-time": "2026-06-01T12:00:00Z",
    "date": "2026-06-01",
    "time": "12:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "example.com",
}


def value_for_schema(schema: Mapping[str, Any] | None, rng: random.Random) -> Any:
    """A value valid against ``schema``; ``{}`` for a missing schema (a no-argument tool)."""
    if not schema:
        return {}
    return _value(schema, schema, rng, 0)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _type_of(schema: Mapping[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        non_null = [t for t in declared if t != "null"]
        declared = non_null[0] if non_null else "null"
    if isinstance(declared, str):
        return declared
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _value(schema: Mapping[str, Any], root: Mapping[str, Any], rng: random.Random, depth: int) -> Any:
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        branches = schema.get(combinator)
        if isinstance(branches, list) and branches:
            # Prefer a non-null branch: a null argument is valid but makes a poor example.
            chosen = next(
                (b for b in branches if isinstance(b, Mapping) and b.get("type") != "null"), branches[0]
            )
            merged = {k: v for k, v in schema.items() if k != combinator}
            return _value({**merged, **chosen}, root, rng, depth)
    kind = _type_of(schema)
    if depth >= _MAX_DEPTH and kind in ("object", "array"):
        return {} if kind == "object" else []
    if kind == "object":
        return _object(schema, root, rng, depth)
    if kind == "array":
        return _array(schema, root, rng, depth)
    if kind == "integer":
        return _integer(schema, rng)
    if kind == "number":
        return _number(schema, rng)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, rng)


def _object(
    schema: Mapping[str, Any], root: Mapping[str, Any], rng: random.Random, depth: int
) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    required_set = set(required) if isinstance(required, list) else set()
    result: dict[str, Any] = {}
    for name, sub in properties.items():
        # Optional properties appear about half the time, as a model's arguments would.
        if name in required_set or rng.random() < 0.5:
            result[name] = _value(sub if isinstance(sub, Mapping) else {}, root, rng, depth + 1)
    for name in sorted(required_set - result.keys()):  # required but not described
        result[name] = rng.choice(WORDS)
    return result


def _array(schema: Mapping[str, Any], root: Mapping[str, Any], rng: random.Random, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    minimum = int(schema.get("minItems", 0))
    maximum = int(schema.get("maxItems", max(minimum, len(prefix), 3)))
    count = min(max(minimum, len(prefix), rng.randint(1, 3)), maximum)
    items = schema.get("items")
    items = items if isinstance(items, Mapping) else {}
    values: list[Any] = []
    for i in range(count):
        sub = prefix[i] if i < len(prefix) and isinstance(prefix[i], Mapping) else items
        values.append(_value(sub, root, rng, depth + 1))
    return values


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _bounds(
    schema: Mapping[str, Any], default_low: float, default_high: float
) -> tuple[float, float, bool, bool]:
    """(low, high, low is exclusive, high is exclusive), filling a missing side from the defaults."""
    low, high = _number_or_none(schema.get("minimum")), _number_or_none(schema.get("maximum"))
    ex_low, ex_high = (
        _number_or_none(schema.get("exclusiveMinimum")),
        _number_or_none(schema.get("exclusiveMaximum")),
    )
    if ex_low is not None:
        low = ex_low
    if ex_high is not None:
        high = ex_high
    span = default_high - default_low
    if low is None:
        low = default_low if high is None else high - span
    if high is None:
        high = low + span
    return low, high, ex_low is not None, ex_high is not None


def _integer(schema: Mapping[str, Any], rng: random.Random) -> int:
    lo, hi, open_low, open_high = _bounds(schema, 1, 100)
    low = math.floor(lo) + 1 if open_low else math.ceil(lo)
    high = math.ceil(hi) - 1 if open_high else math.floor(hi)
    step = schema.get("multipleOf")
    if isinstance(step, int) and step > 0:
        first, last = -(-low // step), high // step
        return rng.randint(first, max(first, last)) * step
    return rng.randint(low, max(low, high))


def _number(schema: Mapping[str, Any], rng: random.Random) -> float | int:
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step > 0 and not isinstance(step, bool):
        lo, hi, _, _ = _bounds(schema, 1, 100)
        first, last = math.ceil(lo / step) + 1, math.floor(hi / step) - 1
        multiple = rng.randint(first, max(first, last)) * step
        return round(multiple, 10) if isinstance(step, float) else multiple
    lo, hi, _, _ = _bounds(schema, 0, 100)
    # Stay strictly inside the range so exclusive bounds hold; two decimals read naturally.
    value = round(lo + (hi - lo) * (0.1 + 0.8 * rng.random()), 2)
    return value if lo < value < hi else (lo + hi) / 2


def _string(schema: Mapping[str, Any], rng: random.Random) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    min_length = int(schema.get("minLength", 1))
    max_length = schema.get("maxLength")
    text = rng.choice(WORDS)
    while len(text) < min_length:
        text += " " + rng.choice(WORDS)
    if isinstance(max_length, int):
        text = text[:max_length]
        if len(text) < min_length:  # contradictory schema; the best we can do
            text = text.ljust(min_length, "x")
    return text
