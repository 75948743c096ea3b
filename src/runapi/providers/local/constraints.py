"""What shape the output must take: free text, JSON, or one forced tool call, as a GBNF grammar.

llama.cpp's grammar sampler masks every token that would break the grammar, so JSON output and
tool arguments are valid by construction, even from a 135M model.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from runapi.canonical import ChatRequest, ToolSpec
from runapi.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class OutputConstraint:
    grammar: str | None = None  # GBNF text; None means free text
    instruction: str | None = None  # appended to the system text, so the model knows the target
    tool: ToolSpec | None = None  # set when the output is this tool's arguments


FREE_TEXT = OutputConstraint()

_AUTO_TOOLS_UNSUPPORTED = (
    "The local model cannot decide on its own whether to call a tool (a 135M model would emit "
    'malformed calls). Force one: tool_choice {"type": "function", "function": {"name": ...}}, or '
    '"required" with exactly one tool, or use tool_choice "none".'
)


def output_constraint(request: ChatRequest) -> OutputConstraint:
    """The constraint for a request. Raises `InvalidRequest` for what the local model can't do."""
    tool = forced_tool(request)
    if tool is not None:
        return OutputConstraint(
            grammar=_schema_grammar(_canonical_json(tool.parameters or {"type": "object"}), "tools"),
            instruction=_tool_instruction(tool),
            tool=tool,
        )
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return FREE_TEXT
    if fmt.type == "json_schema" and fmt.schema is not None:
        schema_json = _canonical_json(fmt.schema)
        return OutputConstraint(
            grammar=_schema_grammar(schema_json, "response_format"),
            instruction=f"Reply with only a JSON value that matches this JSON Schema: {schema_json}",
        )
    return OutputConstraint(grammar=_json_object_grammar(), instruction="Reply with only a JSON object.")


def forced_tool(request: ChatRequest) -> ToolSpec | None:
    """The one tool the output must call, None for plain output; auto tool use is refused."""
    if not request.tools:
        return None
    choice = request.tool_choice
    mode = choice.mode if choice is not None else "auto"
    if mode == "none":
        return None
    if mode == "tool":
        assert choice is not None
        for tool in request.tools:
            if tool.name == choice.name:
                return tool
        raise InvalidRequest(
            f"tool_choice names the function {choice.name!r}, which is not among the request's tools.",
            param="tool_choice",
        )
    if mode == "required":
        if len(request.tools) == 1:
            return request.tools[0]
        raise InvalidRequest(
            'The local model supports tool_choice "required" only with exactly one tool; '
            "name the function to call in tool_choice instead.",
            param="tool_choice",
        )
    raise InvalidRequest(_AUTO_TOOLS_UNSUPPORTED, param="tool_choice")


def _tool_instruction(tool: ToolSpec) -> str:
    about = f" ({tool.description})" if tool.description else ""
    return (
        f"Call the function `{tool.name}`{about}. Reply with only its arguments, a JSON object "
        f"matching this JSON Schema: {_canonical_json(tool.parameters or {'type': 'object'})}"
    )


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _schema_grammar(schema_json: str, param: str) -> str:
    try:
        return _grammar_from_schema(schema_json)
    except Exception as exc:  # the converter raises plain ValueError/KeyError/... on odd schemas
        raise InvalidRequest(
            f"The local model cannot turn this JSON Schema into a grammar: {exc}", param=param
        ) from exc


@functools.lru_cache(maxsize=256)
def _grammar_from_schema(schema_json: str) -> str:
    # Conversion is pure Python and clients resend the same schema on every call: convert once.
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    grammar: str = json_schema_to_gbnf(schema_json)
    return grammar


def _json_object_grammar() -> str:
    from llama_cpp.llama_grammar import JSON_GBNF

    grammar: str = JSON_GBNF
    return grammar
