"""A fixture server for the official MCP conformance suite, built with mcphive's own server machinery.

The suite (``@modelcontextprotocol/conformance``, run by ``scripts/conformance.sh``) drives a server
over streamable HTTP and expects fixed fixture names: ``test_simple_text``, ``test://static-text``,
``test_simple_prompt`` and so on. This module answers them with the same building blocks mcphive's
real servers use (``MCPServer``, titles, annotations, structured output, ``tool_errors``), so a
conformance failure here is a failure of that machinery. It targets the stateless 2026-07-28 wire:
server-to-client input travels as ``InputRequiredResult`` rounds, never as requests on a session.

:func:`serve_on_loopback` runs any ``MCPServer`` on ``127.0.0.1`` on a free port, for the suite and tests.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer, RequestStateSecurity
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    AudioContent,
    Completion,
    CompletionArgument,
    CompletionContext,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    EmbeddedResource,
    ImageContent,
    InputRequest,
    InputRequiredResult,
    ListRootsRequest,
    ListRootsResult,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from pydantic import Field

from mcphive.errors import ToolError
from mcphive.mcp_servers._errors import tool_errors

__all__ = ["build_conformance_server", "serve_on_loopback"]

logger = logging.getLogger(__name__)

# A 1x1 PNG and a 2-sample WAV: the smallest valid payloads of their kinds.
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
_PURE = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _text(text: str) -> TextContent:
    return TextContent(type="text", text=text)


def _image() -> ImageContent:
    return ImageContent(type="image", data=PNG_BASE64, mime_type="image/png")


def _ask(message: str, field: str, kind: str = "string") -> ElicitRequest:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def _sample(prompt: str, max_tokens: int) -> CreateMessageRequest:
    messages = [SamplingMessage(role="user", content=_text(prompt))]
    return CreateMessageRequest(params=CreateMessageRequestParams(messages=messages, max_tokens=max_tokens))


def _elicited(answer: Any, field: str) -> Any:
    """The ``field`` of an accepted elicitation answer, or None."""
    if isinstance(answer, ElicitResult) and answer.content:
        return answer.content.get(field)
    return None


def _add_content_tools(server: MCPServer) -> None:
    """Tools whose results exercise each content type, errors and progress."""

    @server.tool(title="Simple text", annotations=_PURE)
    def test_simple_text() -> str:
        """Return one text block."""
        return "This is a simple text response for testing."

    @server.tool(title="Image content", annotations=_PURE)
    def test_image_content() -> list[ImageContent]:
        """Return one PNG image block."""
        return [_image()]

    @server.tool(title="Audio content", annotations=_PURE)
    def test_audio_content() -> list[AudioContent]:
        """Return one WAV audio block."""
        return [AudioContent(type="audio", data=WAV_BASE64, mime_type="audio/wav")]

    @server.tool(title="Embedded resource", annotations=_PURE)
    def test_embedded_resource() -> list[EmbeddedResource]:
        """Return one embedded text resource."""
        text = "This is an embedded resource content."
        contents = TextResourceContents(uri="test://embedded-resource", mime_type="text/plain", text=text)
        return [EmbeddedResource(type="resource", resource=contents)]

    @server.tool(title="Mixed content", annotations=_PURE)
    def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
        """Return text, an image and an embedded JSON resource together."""
        data = TextResourceContents(
            uri="test://mixed-content-resource", mime_type="application/json", text='{"test": "data", "value": 123}'
        )
        return [_text("Multiple content types test:"), _image(), EmbeddedResource(type="resource", resource=data)]

    @server.tool(title="Always fails", annotations=_PURE)
    @tool_errors
    def test_error_handling() -> str:
        """Fail with a tool error the model could read and act on."""
        raise ToolError("This tool intentionally returns an error for testing")

    @server.tool(title="Reports progress", annotations=_PURE)
    async def test_tool_with_progress(ctx: Context) -> str:
        """Report progress at 0, 50 and 100 of 100, then return the progress token."""
        for step in (0, 50, 100):
            await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
        meta = ctx.request_context.meta or {}
        return str(meta.get("progress_token", 0))

    @server.tool(title="Echo a header parameter", annotations=_PURE, structured_output=True)
    def test_x_mcp_header(
        region: Annotated[
            str, Field(description="Mirrored into Mcp-Param-Region", json_schema_extra={"x-mcp-header": "Region"})
        ] = "<none>",
    ) -> dict[str, str]:
        """Return the region argument; the client mirrors it into an ``Mcp-Param-Region`` header."""
        return {"region": region}

    @server.tool(title="Needs client sampling", annotations=_PURE)
    async def test_missing_capability(ctx: Context) -> str:
        """Refuse with a protocol error (-32021) unless the client declared the sampling capability."""
        caps = ctx.client_capabilities
        if caps is None or caps.sampling is None:
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="this tool needs the client's 'sampling' capability; declare it and call again",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return "Client declared sampling capability; proceeding."


def _add_input_required_tools(server: MCPServer) -> None:
    """Multi-round-trip tools (SEP-2322): each asks the client for input, then answers with it."""

    @server.tool(title="Ask for a name", annotations=_PURE)
    async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
        """Elicit the user's name, then greet them."""
        answers = ctx.input_responses or {}
        if "user_name" in answers:
            return f"Hello, {_elicited(answers['user_name'], 'name') or 'stranger'}!"
        return InputRequiredResult(input_requests={"user_name": _ask("What is your name?", "name")})

    @server.tool(title="Ask the client's model", annotations=_PURE)
    async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
        """Sample a completion from the client's model, then report it."""
        answer = (ctx.input_responses or {}).get("capital_question")
        if answer is not None:
            ok = isinstance(answer, CreateMessageResult) and answer.content.type == "text"
            return f"Model said: {answer.content.text if ok else '?'}"  # type: ignore[union-attr]
        return InputRequiredResult(input_requests={"capital_question": _sample("What is the capital of France?", 100)})

    @server.tool(title="Ask for the client's roots", annotations=_PURE)
    async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
        """List the client's roots, then count them."""
        answer = (ctx.input_responses or {}).get("client_roots")
        if answer is not None:
            return f"Client exposed {len(answer.roots) if isinstance(answer, ListRootsResult) else 0} root(s)."
        return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})

    @server.tool(title="Round-trip request state", annotations=_PURE)
    async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
        """Ask for a confirmation with request state, and accept it only with that state echoed."""
        if "confirm" in (ctx.input_responses or {}) and ctx.request_state == "request-state-nonce":
            return "state-ok: confirmation received"
        confirm = _ask("Please confirm", "ok", "boolean")
        return InputRequiredResult(input_requests={"confirm": confirm}, request_state="request-state-nonce")

    @server.tool(title="Ask for several inputs", annotations=_PURE)
    async def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
        """Ask for an elicitation, a sampling and the roots in one round."""
        if {"user_name", "greeting", "client_roots"} <= (ctx.input_responses or {}).keys():
            return "All inputs received."
        requests: dict[str, InputRequest] = {
            "user_name": _ask("What is your name?", "name"),
            "greeting": _sample("Generate a greeting", 50),
            "client_roots": ListRootsRequest(),
        }
        return InputRequiredResult(input_requests=requests, request_state="multiple-inputs")

    @server.tool(title="Three rounds", annotations=_PURE)
    async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
        """Ask for a name, then a colour, carrying the name forward in request state."""
        state = json.loads(ctx.request_state) if ctx.request_state else {"round": 0}
        answers = ctx.input_responses or {}
        if state["round"] == 1 and "step1" in answers:
            name = _elicited(answers["step1"], "name")
            step2 = _ask("Step 2: What is your favorite color?", "color")
            return InputRequiredResult(
                input_requests={"step2": step2}, request_state=json.dumps({"round": 2, "name": name})
            )
        if state["round"] == 2 and "step2" in answers:
            return f"{state.get('name')} likes {_elicited(answers['step2'], 'color')}."
        # First call, or an answer missing or out of order: start again from step 1.
        step1 = _ask("Step 1: What is your name?", "name")
        return InputRequiredResult(input_requests={"step1": step1}, request_state=json.dumps({"round": 1}))

    @server.tool(title="Reject tampered state", annotations=_PURE)
    async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
        """Ask once with request state; the SDK's sealed-state boundary rejects a tampered echo."""
        if ctx.request_state is None:
            confirm = _ask("Please confirm", "ok", "boolean")
            return InputRequiredResult(input_requests={"confirm": confirm}, request_state="round-1")
        return f"state-ok: {ctx.request_state}"

    @server.tool(title="Ask only what the client supports", annotations=_PURE)
    async def test_input_required_result_capabilities(ctx: Context) -> InputRequiredResult:
        """Ask for sampling and elicitation only where the client declared those capabilities."""
        caps = ctx.client_capabilities
        requests: dict[str, InputRequest] = {}
        if caps is None or caps.sampling is not None:
            requests["sample"] = _sample("Say hello", 50)
        if caps is None or caps.elicitation is not None:
            requests["ask"] = _ask("What is your name?", "name")
        return InputRequiredResult(input_requests=requests, request_state="capability-gated")


def _dynamic() -> str:
    """Registered and removed at once by the list-changed triggers."""
    return "dynamic"


def _add_list_change_triggers(server: MCPServer) -> None:
    """Tools that change the tool or prompt list and announce it to ``subscriptions/listen`` streams."""

    @server.tool(title="Change the tool list")
    async def test_trigger_tool_change(ctx: Context) -> str:
        """Add and remove a tool, then announce that the tool list changed."""
        server.add_tool(_dynamic, name="test_dynamic_tool")
        server.remove_tool("test_dynamic_tool")
        await ctx.notify_tools_changed()
        return "tool list changed"

    @server.tool(title="Change the prompt list")
    async def test_trigger_prompt_change(ctx: Context) -> str:
        """Add and remove a prompt, then announce that the prompt list changed."""
        server.add_prompt(Prompt.from_function(_dynamic, name="test_dynamic_prompt", description="dynamic"))
        server.remove_prompt("test_dynamic_prompt")
        await ctx.notify_prompts_changed()
        return "prompt list changed"


def _add_resources(server: MCPServer) -> None:
    @server.resource("test://static-text", title="Static text", mime_type="text/plain")
    def static_text() -> str:
        """A fixed text resource."""
        return "This is the content of the static text resource."

    @server.resource("test://static-binary", title="Static binary", mime_type="image/png")
    def static_binary() -> bytes:
        """A fixed PNG image."""
        return base64.b64decode(PNG_BASE64)

    @server.resource("test://template/{id}/data", title="Templated data", mime_type="application/json")
    def template_data(id: str) -> str:
        """JSON naming the id substituted into the URI."""
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource("test://watched-resource", title="Watched resource", mime_type="text/plain")
    def watched() -> str:
        """A resource clients may subscribe to."""
        return "Watched resource content"


def _add_prompts(server: MCPServer) -> None:
    @server.prompt(title="Simple prompt")
    def test_simple_prompt() -> list[UserMessage]:
        """A prompt without arguments."""
        return [UserMessage(role="user", content=_text("This is a simple prompt for testing."))]

    @server.prompt(title="Prompt with arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        """A prompt with two required arguments."""
        return [UserMessage(role="user", content=_text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]

    @server.prompt(title="Prompt with a resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
        """A prompt embedding the resource at ``resourceUri``."""
        text = "Embedded resource content for testing."
        contents = TextResourceContents(uri=resourceUri, mime_type="text/plain", text=text)
        return [
            UserMessage(role="user", content=EmbeddedResource(type="resource", resource=contents)),
            UserMessage(role="user", content=_text("Please process the embedded resource above.")),
        ]

    @server.prompt(title="Prompt with an image")
    def test_prompt_with_image() -> list[UserMessage]:
        """A prompt carrying a PNG image."""
        return [
            UserMessage(role="user", content=_image()),
            UserMessage(role="user", content=_text("Please analyze the image above.")),
        ]

    @server.prompt(title="Prompt that asks first")
    async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
        """A prompt that elicits its context from the user before rendering."""
        answer = (ctx.input_responses or {}).get("user_context")
        if answer is not None:
            context = _elicited(answer, "context") or "?"
            return [UserMessage(role="user", content=_text(f"Use the following context: {context}"))]
        ask = _ask("What context should the prompt use?", "context")
        return InputRequiredResult(input_requests={"user_context": ask})

    @server.completion()  # type: ignore[untyped-decorator, no-untyped-call]  # the SDK leaves it unannotated
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        """No suggestions: the suite checks the shape of the answer, not its values."""
        return Completion(values=[], total=0, has_more=False)


def build_conformance_server() -> MCPServer:
    """An MCP server named ``mcphive-conformance`` with every fixture the 2026-07-28 server suite names.

    Request state is sealed with a key drawn per process: the server is a fixture, never a
    deployment, so nothing needs to unseal state across restarts.
    """
    server = MCPServer(
        "mcphive-conformance",
        version="1.0.0",
        instructions="Fixtures for the MCP conformance suite; not a tool server for agents.",
        request_state_security=RequestStateSecurity(keys=[os.urandom(32)]),
    )
    _add_content_tools(server)
    _add_input_required_tools(server)
    _add_list_change_triggers(server)
    _add_resources(server)
    _add_prompts(server)
    return server


@asynccontextmanager
async def serve_on_loopback(server: MCPServer, *, path: str = "/mcp") -> AsyncIterator[str]:
    """Serve ``server`` over streamable HTTP on 127.0.0.1, on a free port, and yield its URL.

    The socket is bound before uvicorn starts, so the port is known without racing for it; the
    server stops when the block exits.
    """
    app = server.streamable_http_app(streamable_http_path=path, host="127.0.0.1")
    # IPPROTO_TCP, or asyncio leaves Nagle on and every keep-alive request waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None: a library must not reconfigure the host process's logging.
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="on")
    http = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(http.serve, [sock])
        with anyio.fail_after(30):
            while not http.started:  # noqa: ASYNC110 - uvicorn reports start-up only as this flag
                await anyio.sleep(0.01)
        logger.info("serving %s on loopback", server.name, extra={"port": port})
        try:
            yield f"http://127.0.0.1:{port}{path}"
        finally:
            http.should_exit = True
    sock.close()
