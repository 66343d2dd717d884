"""The hive itself as an MCP server: what Claude Desktop (or any MCP host) talks to.

Tools: run a task and wait for its result (progress notifications flow on the request's stream
while it runs), or the 2026 way — submit one and poll it by handle (``task_status`` with the step
log so far and any writing call awaiting approval, ``task_result``, ``cancel_task``), decide on a
pending call (``approve_task``, ``reject_task``) — and list the agents. Resources: the agents, recent
tasks, and each task's full record. Prompts: ready-made jobs from ``gateway_prompts.toml``.
"""

from __future__ import annotations

import json
import tomllib
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError as SDKToolError
from mcp.types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult, ToolAnnotations
from pydantic import BaseModel, Field

from mcphive import __version__
from mcphive.errors import MCPHiveError
from mcphive.redaction import redact_value
from mcphive.router.events import describe
from mcphive.types import ApprovalRequest, TaskResult, TaskStatus

if TYPE_CHECKING:
    from mcphive.hive import Hive

__all__ = ["build_gateway"]


def _brief(result: TaskResult) -> dict[str, Any]:
    """The result as a client sees it; credentials redacted (a stored result already is; this one may not be).

    Each tool call is summarised (the full outputs stay in ``mcphive://tasks/{id}``), a plan's subtasks likewise.
    """
    data: dict[str, Any] = redact_value(result.model_dump(mode="json", exclude={"steps", "subtasks"}))
    data["subtasks"] = [_brief(sub) for sub in result.subtasks]
    data["tool_calls"] = [
        {
            "tool": c.tool,
            "chosen_by": c.chosen_by,
            "is_error": c.is_error,
            "summary": (c.structured or {}).get("summary", ""),
        }
        for c in result.tool_calls
    ]
    return data


# Protocol versions from this one on are stateless: input is asked for by returning InputRequiredResult.
_STATELESS_ERA = "2026-07-28"


class _ApprovalAnswer(BaseModel):
    """The form an MCP host shows for a writing call awaiting approval."""

    approve: bool = Field(description="Run this call (true) or refuse it (false)")
    reason: str = Field("", description="Why, for the task's record (optional)")


def _approval_question(request: ApprovalRequest) -> str:
    arguments = json.dumps(request.arguments, ensure_ascii=False)
    if len(arguments) > 600:
        arguments = arguments[:600] + "…"
    return f"mcphive task {request.task_id} wants to run {request.server}.{request.tool} {arguments}. Allow it?"


def _ask_approval(request: ApprovalRequest) -> ElicitRequest:
    schema = _ApprovalAnswer.model_json_schema()
    return ElicitRequest(params=ElicitRequestFormParams(message=_approval_question(request), requested_schema=schema))


def _answer_of(response: Any) -> _ApprovalAnswer | None:
    """An accepted, valid answer to :func:`_ask_approval`; None for declined, cancelled or malformed ones."""
    if isinstance(response, ElicitResult) and response.action == "accept" and response.content:
        try:
            return _ApprovalAnswer.model_validate(response.content)
        except ValueError:
            return None
    return None


def build_gateway(hive: Hive) -> MCPServer:
    """An MCP server named ``mcphive`` exposing ``hive``'s tasks and agents."""
    server: MCPServer = MCPServer(
        "mcphive",
        version=__version__,
        instructions="mcphive routes engineering tasks to specialist agents (code, docs, test, infra, ops, "
        "security) that work on a local project folder. Pass the project's absolute path as workspace.",
    )

    async def guarded(coro: Any) -> Any:
        try:
            return await coro
        except MCPHiveError as e:  # usage and run errors go back to the host as tool errors it can show
            raise SDKToolError(str(e)) from e

    @server.tool(
        title="Run a task",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False),
        structured_output=True,
    )
    async def run_task(
        text: str, workspace: str, ctx: Context, agent: str | None = None, priority: str = "normal"
    ) -> dict[str, Any] | InputRequiredResult:
        """Run an engineering task on a project folder and wait for the result (findings, steps, answer).

        A writing call that needs approval is put to the user through the host (an elicitation form);
        a host that cannot ask gets the pending call back, to decide with approve_task or reject_task.
        """
        task_id = ctx.request_state  # set when this call is the host's answer to an approval question
        if task_id is not None:
            answer = _answer_of((ctx.input_responses or {}).get("approval"))
            await decide(task_id, answer)
        else:
            task_id = (await guarded(hive.submit(text, workspace=workspace, agent=agent, priority=priority))).id
        seen = len(hive.events_so_far(task_id)) if ctx.request_state is not None else 0
        count = 0
        async for event in hive.events(task_id):
            if seen:  # replayed events the first round already reported, up to its approval question
                seen -= 1
                continue
            line = describe(event)
            if line:
                count += 1
                await ctx.report_progress(count, None, line)
            if event.kind != "awaiting_approval":
                continue
            request = await guarded(hive.pending_approval(task_id))
            if request is None:  # decided already (the SDK callback, another client)
                continue
            capabilities = ctx.client_capabilities
            if capabilities is None or capabilities.elicitation is None:
                status = {"task_id": task_id, "status": TaskStatus.AWAITING_APPROVAL.value}
                return status | {"pending_approval": redact_value(request.model_dump(mode="json"))}
            if (ctx.protocol_version or "") >= _STATELESS_ERA:
                return InputRequiredResult(input_requests={"approval": _ask_approval(request)}, request_state=task_id)
            elicited = await ctx.elicit(_approval_question(request), _ApprovalAnswer)
            await decide(task_id, elicited.data if elicited.action == "accept" else None)
        return _brief(await guarded(hive.wait(task_id)))

    async def decide(task_id: str, answer: _ApprovalAnswer | None) -> None:
        """Apply the host user's answer; declining or cancelling the form rejects the call."""
        if answer is not None and answer.approve:
            await guarded(hive.approve(task_id, by="mcp-client", reason=answer.reason))
        else:
            reason = answer.reason if answer is not None else "declined in the MCP host"
            await guarded(hive.reject(task_id, reason or "rejected in the MCP host", by="mcp-client"))

    @server.tool(title="Submit a task", structured_output=True)
    async def submit_task(
        text: str, workspace: str, agent: str | None = None, priority: str = "normal"
    ) -> dict[str, Any]:
        """Queue a task and return its handle at once; poll it with task_status."""
        handle = await guarded(hive.submit(text, workspace=workspace, agent=agent, priority=priority))
        return {"task_id": handle.id, "status": "queued"}

    @server.tool(title="Task status", annotations=ToolAnnotations(read_only_hint=True), structured_output=True)
    async def task_status(task_id: str) -> dict[str, Any]:
        """The status of a task with its step log so far; once it has ended, its result too."""
        status = await guarded(hive.status(task_id))
        log = [line for event in hive.events_so_far(task_id) if (line := describe(event))]
        if status is TaskStatus.AWAITING_APPROVAL:
            pending = await guarded(hive.pending_approval(task_id))
            shown = redact_value(pending.model_dump(mode="json")) if pending is not None else None
            return {"task_id": task_id, "status": status.value, "log": log, "pending_approval": shown}
        if not status.terminal:
            return {"task_id": task_id, "status": status.value, "log": log}
        result = _brief(await guarded(hive.wait(task_id)))
        return {"task_id": task_id, "status": status.value, "log": log, "result": result}

    @server.tool(title="Task result", annotations=ToolAnnotations(read_only_hint=True), structured_output=True)
    async def task_result(task_id: str) -> dict[str, Any]:
        """Wait for a task to end and return its result."""
        return _brief(await guarded(hive.wait(task_id)))

    @server.tool(title="Cancel a task", annotations=ToolAnnotations(destructive_hint=True), structured_output=True)
    async def cancel_task(task_id: str) -> dict[str, Any]:
        """Cancel a queued or running task."""
        return {"task_id": task_id, "cancelled": await guarded(hive.cancel(task_id))}

    @server.tool(
        title="Approve a tool call", annotations=ToolAnnotations(destructive_hint=True), structured_output=True
    )
    async def approve_task(task_id: str, reason: str = "") -> dict[str, Any]:
        """Approve the writing tool call a task awaits approval for (see task_status); the task then makes it."""
        request = await guarded(hive.approve(task_id, reason=reason))
        return {"task_id": request.task_id, "approved": True, "call": request.model_dump(mode="json")}

    @server.tool(
        title="Reject a tool call", annotations=ToolAnnotations(destructive_hint=False), structured_output=True
    )
    async def reject_task(task_id: str, reason: str = "") -> dict[str, Any]:
        """Reject the writing tool call a task awaits approval for; the call is not made and the task goes on."""
        request = await guarded(hive.reject(task_id, reason))
        return {"task_id": request.task_id, "approved": False, "call": request.model_dump(mode="json")}

    @server.tool(
        title="List agents",
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True),
        structured_output=True,
    )
    def list_agents() -> dict[str, Any]:
        """The specialist agents and what each does."""
        return {
            "agents": [
                {"name": s.name, "title": s.title, "description": s.description, "tools": list(s.tools)}
                for s in hive.specs.values()
            ]
        }

    _add_resources(server, hive)
    _add_prompts(server)
    return server


def _add_resources(server: MCPServer, hive: Hive) -> None:
    @server.resource("mcphive://agents", name="agents", title="Agents", mime_type="application/json")
    def agents() -> str:
        """The specialist agents, their survey and their tools."""
        specs = hive.specs.values()
        return json.dumps([{"name": s.name, "description": s.description, "tools": list(s.tools)} for s in specs])

    @server.resource("mcphive://tasks/recent", name="recent-tasks", title="Recent tasks", mime_type="application/json")
    async def recent() -> str:
        """The 20 most recent tasks of this hive's principal."""
        rows = await hive.memory.recent(20, principal=hive.principal)
        return json.dumps([r.model_dump(mode="json") for r in rows])

    @server.resource(
        "mcphive://tasks/{task_id}", name="task", title="A task's full record", mime_type="application/json"
    )
    async def task(task_id: str) -> str:
        """Everything recorded about one task: route, steps, tool calls, answer."""
        result = await hive.memory.get(task_id)
        if result is None:
            raise SDKToolError(f"no task with id {task_id!r}; read mcphive://tasks/recent to list tasks")
        return result.model_dump_json()


@cache
def _prompt_specs() -> dict[str, dict[str, Any]]:
    text = (resources.files("mcphive.mcp_servers") / "gateway_prompts.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _add_prompts(server: MCPServer) -> None:
    for name, spec in _prompt_specs().items():
        server.add_prompt(_prompt(name, spec))


def _prompt(name: str, spec: dict[str, Any]) -> Any:
    from mcp.server.mcpserver.prompts import Prompt

    def render(workspace: str) -> str:
        return str(spec["template"]).format(workspace=workspace)

    render.__name__ = name
    return Prompt.from_function(render, name=name, description=spec["description"])
