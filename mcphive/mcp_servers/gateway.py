"""The hive itself as an MCP server: what Claude Desktop (or any MCP host) talks to.

Tools: run a task and wait for its result, submit one and poll it by handle (``task_status``,
``cancel_task``), and list the agents. Results are structured content (the TaskResult's JSON),
with a short text rendering for hosts that show text only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as SDKToolError
from mcp.types import ToolAnnotations

from mcphive.errors import MCPHiveError
from mcphive.types import TaskResult

if TYPE_CHECKING:
    from mcphive.hive import Hive

__all__ = ["build_gateway"]


def _brief(result: TaskResult) -> dict[str, Any]:
    data = result.model_dump(mode="json", exclude={"steps"})
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


def build_gateway(hive: Hive) -> MCPServer:
    """An MCP server named ``mcphive`` exposing ``hive``'s tasks and agents."""
    server: MCPServer = MCPServer(
        "mcphive",
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
    async def run_task(text: str, workspace: str, agent: str | None = None, priority: str = "normal") -> dict[str, Any]:
        """Run an engineering task on a project folder and wait for the result (findings, steps, answer)."""
        result = await guarded(hive.run(text, workspace=workspace, agent=agent, priority=priority))
        return _brief(result)

    @server.tool(title="Submit a task", structured_output=True)
    async def submit_task(
        text: str, workspace: str, agent: str | None = None, priority: str = "normal"
    ) -> dict[str, Any]:
        """Queue a task and return its handle at once; poll it with task_status."""
        handle = await guarded(hive.submit(text, workspace=workspace, agent=agent, priority=priority))
        return {"task_id": handle.id, "status": "queued"}

    @server.tool(title="Task status", annotations=ToolAnnotations(read_only_hint=True), structured_output=True)
    async def task_status(task_id: str) -> dict[str, Any]:
        """The status of a task; once it has ended, its result too."""
        status = await guarded(hive.status(task_id))
        if not status.terminal:
            return {"task_id": task_id, "status": status.value}
        return {"task_id": task_id, "status": status.value, "result": _brief(await guarded(hive.wait(task_id)))}

    @server.tool(title="Cancel a task", annotations=ToolAnnotations(destructive_hint=True), structured_output=True)
    async def cancel_task(task_id: str) -> dict[str, Any]:
        """Cancel a queued or running task."""
        return {"task_id": task_id, "cancelled": await guarded(hive.cancel(task_id))}

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

    return server
