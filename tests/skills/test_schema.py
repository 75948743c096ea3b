"""references/schema.json is valid JSON Schema and encodes each family's parameter limits."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from jsonschema import Draft202012Validator

from runapi.catalog import load_catalog
from runapi.skills import SkillCatalog, endpoint_schema, request_def
from runapi.skills.schema import build_schema_document

CHAT = {
    "model": "MiniMax-M2.7",
    "messages": [{"role": "user", "content": "Hello"}],
    "max_tokens": 64,
    "temperature": 0.7,
    "n": 1,
    "stream": False,
    "callback_url": "https://hooks.example.com/runapi",
    "webhook_events_filter": ["start", "completed"],
}
RESPONSES = {"model": "MiniMax-M2.7", "input": "Hello", "max_output_tokens": 64, "temperature": 1}
MESSAGES = {"model": "MiniMax-M2.7", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]}


def _document(skills: SkillCatalog, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(skills.bundles[name].files[f"skills/{name}/references/schema.json"])
    return data


def _validator(skills: SkillCatalog, name: str, endpoint: str) -> Draft202012Validator:
    schema = endpoint_schema(_document(skills, name), request_def(endpoint))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_schema_is_valid_draft_2020_12(skills: SkillCatalog) -> None:
    for name in skills.bundles:
        document = _document(skills, name)
        Draft202012Validator.check_schema(document)
        for endpoint in ("chat.completions", "responses", "messages"):
            Draft202012Validator.check_schema(endpoint_schema(document, request_def(endpoint)))


@pytest.mark.parametrize(
    ("endpoint", "body"), [("chat.completions", CHAT), ("responses", RESPONSES), ("messages", MESSAGES)]
)
def test_requests_built_from_the_schema_validate(
    skills: SkillCatalog, endpoint: str, body: dict[str, Any]
) -> None:
    _validator(skills, "minimax", endpoint).validate(body)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"temperature": 1.5}, "temperature above 1"),
        ({"temperature": 0}, "temperature 0 (the range is open at 0)"),
        ({"n": 2}, "more than one choice"),
        ({"model": "gpt-9-unknown"}, "a model outside the family"),
        ({"model": "SmolLM2-135M-Instruct"}, "another family's model"),
        ({"max_tokens": 131_073}, "above MiniMax-M2.7's max output"),
        ({"max_tokens": 0}, "a zero output cap"),
        ({"callback_url": "not a url"}, "a callback that is not a URL"),
        ({"callback_url": "https://x.example/" + "a" * 2048}, "a callback longer than 2048"),
        ({"webhook_events_filter": ["output"]}, "an event Replicate has but we do not"),
    ],
)
def test_requests_violating_the_schema_fail(skills: SkillCatalog, change: dict[str, Any], why: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validator(skills, "minimax", "chat.completions").validate({**CHAT, **change})


def test_output_cap_is_per_model(skills: SkillCatalog) -> None:
    chat = _validator(skills, "minimax", "chat.completions")
    chat.validate({**CHAT, "model": "MiniMax-M3", "max_completion_tokens": 524_288})
    with pytest.raises(jsonschema.ValidationError):
        chat.validate({**CHAT, "model": "MiniMax-M3", "max_completion_tokens": 524_289})
    with pytest.raises(jsonschema.ValidationError):
        chat.validate({**CHAT, "model": "MiniMax-M2.5", "max_completion_tokens": 200_000})
    responses = _validator(skills, "minimax", "responses")
    with pytest.raises(jsonschema.ValidationError):
        responses.validate({**RESPONSES, "max_output_tokens": 131_073})
    local = _validator(skills, "local", "messages")
    local.validate({**MESSAGES, "model": "SmolLM2-135M-Instruct", "max_tokens": 2048})
    with pytest.raises(jsonschema.ValidationError):
        local.validate({**MESSAGES, "model": "SmolLM2-135M-Instruct", "max_tokens": 2049})


def test_null_stays_allowed_where_the_gateway_accepts_it(skills: SkillCatalog) -> None:
    _validator(skills, "minimax", "chat.completions").validate(
        {**CHAT, "temperature": None, "n": None, "max_tokens": None, "callback_url": None}
    )


def test_endpoints_with_clashing_definition_names_stay_apart() -> None:
    models = load_catalog().families()["local"]
    text_only = {"type": "object", "properties": {"role": {"type": "string"}, "content": {"type": "string"}}}
    with_parts = {"type": "object", "properties": {"content": {"type": "array"}}, "required": ["content"]}

    def schema(message: dict[str, Any]) -> dict[str, Any]:
        return {
            "$ref": "#/$defs/Request",
            "$defs": {
                "Request": {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string"},
                        "messages": {"type": "array", "items": {"$ref": "#/$defs/Message"}},
                    },
                },
                "Message": message,
            },
        }

    document = build_schema_document(
        skill_name="local",
        title="t",
        models=models,
        request_schemas={"chat.completions": schema(text_only), "messages": schema(with_parts)},
        response_schemas=None,
        schema_id="https://gateway.test/schema.json",
    )
    body = {"model": "SmolLM2-135M-Instruct", "messages": [{"content": "hi"}]}
    Draft202012Validator(endpoint_schema(document, "chat.completions.request")).validate(body)
    with pytest.raises(jsonschema.ValidationError):
        Draft202012Validator(endpoint_schema(document, "messages.request")).validate(body)


def test_a_schema_without_refs_is_accepted() -> None:
    models = load_catalog().families()["minimax"]
    document = build_schema_document(
        skill_name="minimax",
        title="t",
        models=models,
        request_schemas={"responses": {"type": "object", "properties": {"model": {"type": "string"}}}},
        response_schemas={"responses": {"type": "object", "properties": {"id": {"type": "string"}}}},
        schema_id="https://gateway.test/schema.json",
    )
    Draft202012Validator.check_schema(document)
    assert set(document["$defs"]) == {"responses.request", "responses.response"}
    props = document["$defs"]["responses.request"]["properties"]
    assert {"callback_url", "webhook_events_filter", "model"} <= set(props)


def test_a_non_object_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="object schema"):
        build_schema_document(
            skill_name="minimax",
            title="t",
            models=load_catalog().families()["minimax"],
            request_schemas={"chat.completions": {"type": "string"}},
            response_schemas=None,
            schema_id="https://gateway.test/schema.json",
        )


def test_a_family_without_auto_tool_calling_must_name_the_tool(skills: SkillCatalog) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    local = {**CHAT, "model": "SmolLM2-135M-Instruct", "tools": tools}
    chat = _validator(skills, "local", "chat.completions")
    chat.validate({**local, "tool_choice": {"type": "function", "function": {"name": "f"}}})
    chat.validate({**local, "tool_choice": "none"})
    for choice in ("auto", "required", None):
        body = {**local, "tool_choice": choice} if choice else local
        with pytest.raises(jsonschema.ValidationError):
            chat.validate(body)
    messages = _validator(skills, "local", "messages")
    body = {
        **MESSAGES,
        "model": "SmolLM2-135M-Instruct",
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    }
    messages.validate({**body, "tool_choice": {"type": "tool", "name": "f"}})
    with pytest.raises(jsonschema.ValidationError):
        messages.validate({**body, "tool_choice": {"type": "any"}})
    # MiniMax picks tools itself.
    _validator(skills, "minimax", "chat.completions").validate(
        {**CHAT, "tools": tools, "tool_choice": "auto"}
    )
