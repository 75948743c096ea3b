"""Canonical messages → the GGUF's own chat template → the model's own token ids.

Usage is billed from these ids, so the prompt the model sees and the count reported are the
same thing by construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import jinja2

from runapi.canonical import ChatRequest, ImagePart, Message, TextPart, ToolCallPart, ToolResultPart
from runapi.errors import InvalidRequest

if TYPE_CHECKING:
    from runapi.providers.local.constraints import OutputConstraint
    from runapi.providers.local.vocabulary import Vocabulary

# For GGUF files without `tokenizer.chat_template`: ChatML, which SmolLM2 itself uses.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)

TemplateMessage = dict[str, Any]  # the shape Hugging Face chat templates read: Jinja input


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    tokens: list[int]


def template_messages(
    request: ChatRequest, instruction: str | None, *, structured_tool_calls: bool, tool_role: bool
) -> list[TemplateMessage]:
    """The conversation as chat-template messages.

    `structured_tool_calls`: the template renders `tool_calls` itself; otherwise past calls are
    written into the assistant text as JSON. `tool_role`: results go in `tool` messages;
    otherwise they become `user` messages, for templates that reject unknown roles.
    """
    out: list[TemplateMessage] = []
    system = [*request.system, *([instruction] if instruction else [])]
    if system:
        out.append({"role": "system", "content": "\n\n".join(system)})
    for message in request.messages:
        if message.role == "assistant":
            out.append(_assistant(message, structured_tool_calls))
        elif message.role == "tool":
            out.extend(_tool_results(message, tool_role))
        else:
            out.append({"role": "user", "content": _text_of(message)})
    return out


def _text_of(message: Message) -> str:
    texts: list[str] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            raise InvalidRequest("The local model reads text only; remove the image parts.", param="messages")
    return "\n".join(texts)


def _assistant(message: Message, structured_tool_calls: bool) -> TemplateMessage:
    # Reasoning parts are dropped: the local model has no thinking channel to replay them into.
    text = "".join(p.text for p in message.parts if isinstance(p, TextPart))
    calls = [p for p in message.parts if isinstance(p, ToolCallPart)]
    if not calls:
        return {"role": "assistant", "content": text}
    if structured_tool_calls:
        return {
            "role": "assistant",
            "content": text,
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": _arguments(c.arguments)},
                }
                for c in calls
            ],
        }
    written = [json.dumps({"name": c.name, "arguments": _arguments(c.arguments)}) for c in calls]
    return {"role": "assistant", "content": "\n".join(filter(None, [text, *written]))}


def _arguments(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments


def _tool_results(message: Message, tool_role: bool) -> list[TemplateMessage]:
    out: list[TemplateMessage] = []
    for part in message.parts:
        if not isinstance(part, ToolResultPart):
            continue
        content = f"Error: {part.content}" if part.is_error else part.content
        if tool_role:
            out.append({"role": "tool", "tool_call_id": part.tool_call_id, "content": content})
        else:
            out.append({"role": "user", "content": f"Result of tool call {part.tool_call_id}: {content}"})
    return out


class PromptBuilder:
    """Renders and tokenizes with a vocabulary-only model (no weights, no KV cache).

    Not thread-safe: the provider calls it from its single tokenizer thread, which keeps this
    CPU work (milliseconds for a long prompt) off the event loop.
    """

    def __init__(self, vocab: Vocabulary) -> None:
        # llama_cpp's formatter: the same Jinja environment and globals llama.cpp's own chat
        # completion uses (sandboxed, `raise_exception`, `strftime_now`, HF-style `tojson`).
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._vocab = vocab
        template = vocab.metadata("tokenizer.chat_template") or CHATML_TEMPLATE
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=vocab.token_text(vocab.eos),
            bos_token=vocab.token_text(vocab.bos),
            add_generation_prompt=True,
        )
        self.structured_tool_calls = "tool_calls" in template
        self._valid_grammars: set[str] = set()

    def render(self, request: ChatRequest, instruction: str | None) -> str:
        has_tool_results = any(m.role == "tool" for m in request.messages)
        attempts = (True, False) if has_tool_results else (True,)
        error: Exception | None = None
        for tool_role in attempts:
            messages = template_messages(
                request, instruction, structured_tool_calls=self.structured_tool_calls, tool_role=tool_role
            )
            try:
                prompt: str = self._formatter(messages=cast(Any, messages)).prompt
                return prompt
            except (jinja2.TemplateError, ValueError) as exc:  # ValueError: the template's raise_exception
                error = exc
        raise InvalidRequest(
            f"The local model's chat template rejected this conversation: {error}", param="messages"
        )

    def tokenize(self, text: str) -> list[int]:
        # No BOS, specials parsed: the template already wrote every special token, as Hugging
        # Face's apply_chat_template does.
        return self._vocab.tokenize(text)

    def check_grammar(self, grammar: str, param: str) -> None:
        if grammar in self._valid_grammars:
            return
        if not self._vocab.accepts_grammar(grammar):
            raise InvalidRequest(
                "The local model cannot constrain its output to this schema (llama.cpp rejected "
                "the grammar made from it); simplify the JSON Schema.",
                param=param,
            )
        if len(self._valid_grammars) >= 256:
            self._valid_grammars.clear()
        self._valid_grammars.add(grammar)

    def build(self, request: ChatRequest, constraint: OutputConstraint) -> Prompt:
        if constraint.grammar is not None:
            self.check_grammar(constraint.grammar, "tools" if constraint.tool else "response_format")
        text = self.render(request, constraint.instruction)
        return Prompt(text=text, tokens=self.tokenize(text))
