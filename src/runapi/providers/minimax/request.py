"""MiniMax's request quirks on top of the generic Chat Completions mapping (protocols.md §5.3).

- `reasoning_split: true`, and earlier reasoning goes back as `reasoning_details` (interleaved
  thinking: MiniMax's quality drops when it is left out, §5.4);
- `max_completion_tokens`, always sent, clamped to the model's cap (the hold assumed that cap);
- temperature and top_p clamped to (0, 1];
- `stop`, `seed`, penalties and `parallel_tool_calls` are not sent: MiniMax ignores them, and the
  gateway enforces stop sequences itself;
- `tool_choice`: M2.x knows only `auto`/`none`, M3 also `required`; naming a tool narrows the
  tool list to that tool instead, the one way that reliably steers the model;
- `thinking` only for M3, from the client's reasoning intent, and its effort as
  `reasoning_effort` where the upstream's `forward_reasoning_effort` asks for it;
- `response_format` only where the model declares it; elsewhere a system instruction.
"""

from __future__ import annotations

from runapi.canonical import ReasoningControl, ToolChoice
from runapi.catalog import ModelEntry
from runapi.providers.openai_wire.request import ReasoningFields, RequestBuilder, WireToolChoice
from runapi.providers.openai_wire.wire import Thinking

_MIN_SAMPLING = 0.01
# The efforts M3 takes (MiniMax's verifier); an SDK's `minimal` is its lowest, `low`.
_M3_EFFORTS = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}


def is_m3(model: ModelEntry) -> bool:
    """M3-generation: thinking can be switched, `tool_choice: required` is honoured."""
    return model.has("thinking_toggle") or model.wire_model.lower().startswith("minimax-m3")


class MiniMaxRequestBuilder(RequestBuilder):
    def __init__(self, *, reasoning_split: bool = True, forward_reasoning_effort: bool = False) -> None:
        self.forward_reasoning_effort = forward_reasoning_effort
        super().__init__(
            reasoning_split=reasoning_split,
            reasoning_history="reasoning_details" if reasoning_split else "think_tags",
            max_tokens_field="max_completion_tokens",
            default_max_tokens=True,
            send_stop=False,
            send_seed=False,
            send_parallel_tool_calls=False,
        )

    def tool_choice(self, choice: ToolChoice, model: ModelEntry) -> tuple[WireToolChoice, str | None]:
        if choice.mode in ("auto", "none"):
            return choice.mode, None
        forced = "required" if is_m3(model) else "auto"
        return forced, choice.name if choice.mode == "tool" else None

    def reasoning(self, control: ReasoningControl, model: ModelEntry) -> ReasoningFields:
        if not is_m3(model):
            return ReasoningFields()  # M2.x always thinks
        if control.enabled is False or control.effort == "none":
            return ReasoningFields(thinking=Thinking("disabled"))
        if control.enabled is True or control.effort is not None:
            effort = _M3_EFFORTS.get(control.effort or "") if self.forward_reasoning_effort else None
            return ReasoningFields(thinking=Thinking("adaptive"), reasoning_effort=effort)
        return ReasoningFields()

    def native_response_format(self, model: ModelEntry) -> bool:
        return model.has("response_format")

    def sampling(self, value: float | None) -> float | None:
        if value is None:
            return None
        return min(1.0, max(_MIN_SAMPLING, value))
