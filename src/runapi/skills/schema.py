"""Specialize the gateway's own request schemas for one model family (runapi-contract §11.1).

The surfaces describe what the gateway parses; a skill narrows that to what a family accepts: the
model enum, the output cap per model, MiniMax's temperature range, a single choice, and the
gateway extras for async delivery. The result is one JSON Schema document (Draft 2020-12) whose
`$defs` hold one schema per endpoint, so `references/schema.json` never drifts from the code.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runapi.catalog import ModelEntry

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

ENDPOINT_PATHS: dict[str, str] = {
    "chat.completions": "/v1/chat/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}

# Every output-cap field the three surfaces know (protocols.md §6.8).
OUTPUT_CAP_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
WEBHOOK_EVENTS = ("start", "completed")
CALLBACK_URL_MAX_LENGTH = 2048

JsonObject = dict[str, Any]


def request_def(endpoint: str) -> str:
    """The `$defs` key of an endpoint's request schema inside `references/schema.json`."""
    return f"{endpoint}.request"


def response_def(endpoint: str) -> str:
    return f"{endpoint}.response"


def endpoint_schema(document: Mapping[str, Any], definition: str) -> JsonObject:
    """A schema that validates one endpoint body, with the document's `$defs` kept resolvable."""
    out = dict(document)
    out["$ref"] = f"#/$defs/{definition}"
    return out


def build_schema_document(
    *,
    skill_name: str,
    title: str,
    models: Sequence[ModelEntry],
    request_schemas: Mapping[str, Mapping[str, Any]],
    response_schemas: Mapping[str, Mapping[str, Any]] | None,
    schema_id: str,
) -> JsonObject:
    """One document: `$defs["<endpoint>.request"]` per endpoint, specialized for `models`."""
    if not models:
        raise ValueError(f"skill {skill_name!r} has no models")
    defs: JsonObject = {}
    for endpoint in sorted(request_schemas):
        prefix = request_def(endpoint)
        root = _namespace(request_schemas[endpoint], prefix, defs)
        _specialize(root, models)
        root["x-runapi-endpoint"] = {"method": "POST", "path": ENDPOINT_PATHS.get(endpoint, "")}
    for endpoint in sorted(response_schemas or {}):
        _namespace((response_schemas or {})[endpoint], response_def(endpoint), defs)
    endpoints = ", ".join(f"`#/$defs/{request_def(e)}`" for e in sorted(request_schemas))
    return {
        "$schema": DRAFT_2020_12,
        "$id": schema_id,
        "title": title,
        "description": (
            "Request bodies this runapi gateway accepts for these models, one schema per endpoint. "
            f"Validate a body against {endpoints}. Generated from the gateway's own wire types."
        ),
        "$defs": defs,
    }


# --- namespacing -------------------------------------------------------------------------------


def _namespace(schema: Mapping[str, Any], prefix: str, defs: JsonObject) -> JsonObject:
    """Move one endpoint schema into the shared `$defs`, renaming its definitions under `prefix`.

    msgspec emits `{"$ref": "#/$defs/Root", "$defs": {...}}`; the surfaces reuse struct names
    (`Message`, `Tool`) with different shapes, so each endpoint gets its own namespace. Returns the
    (mutable) root object schema stored at `defs[prefix]`.
    """
    source = copy.deepcopy(dict(schema))
    local_defs: dict[str, Any] = source.pop("$defs", {})
    root_name: str | None = None
    ref = source.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and set(source) <= {"$ref", "$schema", "title"}:
        root_name = ref.removeprefix("#/$defs/")
    renames = {name: f"{prefix}:{name}" for name in local_defs}
    if root_name is not None:
        renames[root_name] = prefix
    for name, body in local_defs.items():
        defs[renames[name]] = _rewrite_refs(body, renames)
    if root_name is None:
        source.pop("$schema", None)
        defs[prefix] = _rewrite_refs(source, renames)
    root = defs[prefix]
    if not isinstance(root, dict) or not isinstance(root.get("properties"), dict):
        raise ValueError(f"schema for {prefix!r} is not an object schema with properties")
    return root


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                name = value.removeprefix("#/$defs/")
                out[key] = f"#/$defs/{renames.get(name, name)}"
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


# --- specialization ----------------------------------------------------------------------------


def _specialize(root: JsonObject, models: Sequence[ModelEntry]) -> None:
    props: JsonObject = root["properties"]
    ids = [m.id for m in models]
    props["model"] = _keep_docs(
        props.get("model", {}),
        {"type": "string", "enum": ids},
        "One of this skill's model ids (aliases work on the gateway but are not listed here).",
    )
    required = root.setdefault("required", [])
    if "model" not in required:
        required.append("model")

    cap_fields = [f for f in OUTPUT_CAP_FIELDS if f in props]
    family_cap = max(m.max_output for m in models)
    for field in cap_fields:
        props[field] = _constrain(
            props[field],
            {"type": "integer", "minimum": 1, "maximum": family_cap},
            "Output cap, reasoning tokens included; at most the model's max output (see models.md).",
        )
    conditions = _per_model_caps(models, cap_fields, family_cap)
    if conditions:
        root.setdefault("allOf", []).extend(conditions)

    if "temperature" in props:
        props["temperature"] = _constrain(
            props["temperature"],
            {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "MiniMax-style range (0, 1]: 0 and values above 1 are out of range for these models.",
        )
    if "n" in props:
        props["n"] = _constrain(props["n"], {"const": 1}, "Only one choice per request.")

    if "tool_choice" in props and not any(m.has("tools") for m in models):
        root.setdefault("allOf", []).extend(_forced_tool_choice_only())

    # `format` is only an annotation in 2020-12; the pattern makes validators enforce a URL shape.
    props["callback_url"] = _constrain(
        props.get("callback_url", {}),
        {
            "type": "string",
            "format": "uri",
            "pattern": "^https?://[^\\s]+$",
            "maxLength": CALLBACK_URL_MAX_LENGTH,
        },
        "runapi extra: deliver the finished task to this HTTPS URL (implies async mode, 202).",
    )
    props["webhook_events_filter"] = _constrain(
        props.get("webhook_events_filter", {}),
        {
            "type": "array",
            "items": {"enum": list(WEBHOOK_EVENTS)},
            "uniqueItems": True,
            "default": ["completed"],
        },
        "runapi extra: which webhook events to send; `completed` covers every terminal status.",
    )


def _per_model_caps(models: Sequence[ModelEntry], fields: Iterable[str], family_cap: int) -> list[JsonObject]:
    """`if model in {...} then cap <= N` for every model whose cap is below the family's largest."""
    fields = list(fields)
    by_cap: dict[int, list[str]] = {}
    for model in models:
        if model.max_output < family_cap:
            by_cap.setdefault(model.max_output, []).append(model.id)
    return [
        {
            "if": {"properties": {"model": {"enum": ids}}, "required": ["model"]},
            "then": {"properties": {f: {"maximum": cap} for f in fields}},
        }
        for cap, ids in sorted(by_cap.items())
        if fields
    ]


# "auto"/"required" on the OpenAI surfaces, {"type": "auto"|"any"} on Anthropic Messages.
_MODEL_PICKS_TOOL = {
    "anyOf": [
        {"enum": ["auto", "required"]},
        {"type": "object", "properties": {"type": {"enum": ["auto", "any"]}}, "required": ["type"]},
    ]
}


def _forced_tool_choice_only() -> list[JsonObject]:
    """For families that cannot choose tools themselves: tools need a `tool_choice` naming one."""
    return [
        {
            "description": "These models only call a tool when `tool_choice` names it.",
            "not": {"properties": {"tool_choice": _MODEL_PICKS_TOOL}, "required": ["tool_choice"]},
        },
        {
            "if": {"properties": {"tools": {"type": "array", "minItems": 1}}, "required": ["tools"]},
            "then": {"required": ["tool_choice"]},
        },
    ]


_DOC_KEYS = ("title", "description", "default", "examples")


def _keep_docs(original: Mapping[str, Any], constraint: JsonObject, note: str) -> JsonObject:
    out: JsonObject = {k: original[k] for k in _DOC_KEYS if k in original}
    out.update(constraint)
    out["description"] = f"{out['description']} {note}" if "description" in original else note
    return out


def _constrain(original: Mapping[str, Any], constraint: JsonObject, note: str) -> JsonObject:
    """Replace a property's value schema, keeping `null` when the gateway accepts it."""
    if not _nullable(original):
        return _keep_docs(original, constraint, note)
    out = _keep_docs(original, {}, note)
    out["anyOf"] = [constraint, {"type": "null"}]
    return out


def _nullable(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, []):
            if isinstance(branch, Mapping) and _nullable(branch):
                return True
    return False
