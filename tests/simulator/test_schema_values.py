"""Generated tool arguments validate against the tool's JSON Schema."""

from __future__ import annotations

import random
from typing import Any

import jsonschema
import pytest

from runapi.simulator.schema_values import value_for_schema

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {}},
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 12, "maxLength": 40},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "even": {"type": "integer", "multipleOf": 2, "minimum": 10, "maximum": 20},
            "flag": {"type": "boolean"},
            "kind": {"const": "fixed"},
            "when": {"type": "string", "format": "date-time"},
        },
        "required": ["city", "unit", "days", "ratio", "even", "flag", "kind", "when"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "minItems": 2,
                "maxItems": 4,
                "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
                    "required": ["sku", "qty"],
                },
            },
            "note": {"type": ["string", "null"]},
            "choice": {"anyOf": [{"type": "null"}, {"type": "integer", "maximum": -5}]},
        },
        "required": ["items", "note", "choice"],
    },
    {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
        "type": "object",
        "properties": {"path": {"type": "array", "items": {"$ref": "#/$defs/point"}, "minItems": 1}},
        "required": ["path"],
    },
    {"type": "object", "properties": {"tags": {"type": "array", "prefixItems": [{"type": "integer"}]}}},
    {"type": "object", "required": ["undescribed"]},
]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("seed", range(10))
def test_value_is_valid(schema: dict[str, Any], seed: int) -> None:
    value = value_for_schema(schema, random.Random(seed))
    jsonschema.Draft202012Validator(schema).validate(value)


def test_deterministic_for_a_seed() -> None:
    schema = SCHEMAS[1]
    assert value_for_schema(schema, random.Random(7)) == value_for_schema(schema, random.Random(7))


def test_enum_and_const_take_the_first_value() -> None:
    value = value_for_schema(SCHEMAS[1], random.Random(0))
    assert (value["unit"], value["kind"]) == ("celsius", "fixed")


def test_no_schema_means_no_arguments() -> None:
    assert value_for_schema(None, random.Random(0)) == {}
