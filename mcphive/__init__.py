"""mcphive: multi-agent orchestration over the Model Context Protocol.

A router and a prioritizer dispatch tasks to six specialist agents (code, docs, test, infra,
ops, security) that share state and tools through MCP servers::

    from mcphive import Hive

    async with Hive.open() as hive:
        result = await hive.run("find hard-coded secrets", workspace="path/to/project")
        print(result.answer)

Heavy parts (the embedding model, chromadb, llama.cpp) load on first use, so importing
mcphive is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcphive.errors import (
    ConfigError,
    InvalidTask,
    MCPHiveError,
    ModelUnavailable,
    QueueFull,
    RunError,
    TaskFailed,
    ToolError,
    UnknownAgent,
    UsageError,
    WorkspaceError,
)
from mcphive.settings import Settings, load_settings
from mcphive.types import (
    ApprovalDecision,
    ApprovalRequest,
    Change,
    Event,
    Finding,
    Principal,
    Priority,
    Route,
    Step,
    Task,
    TaskResult,
    TaskStatus,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from mcphive.hive import Hive, TaskHandle

__version__ = "0.1.0"

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "Change",
    "ConfigError",
    "Event",
    "Finding",
    "Hive",
    "InvalidTask",
    "MCPHiveError",
    "ModelUnavailable",
    "Principal",
    "Priority",
    "QueueFull",
    "Route",
    "RunError",
    "Settings",
    "Step",
    "Task",
    "TaskFailed",
    "TaskHandle",
    "TaskResult",
    "TaskStatus",
    "ToolCall",
    "ToolError",
    "UnknownAgent",
    "Usage",
    "UsageError",
    "WorkspaceError",
    "__version__",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    # Hive pulls in langgraph, mcp and SQLAlchemy; load it only when asked for.
    if name in ("Hive", "TaskHandle"):
        from mcphive import hive

        return getattr(hive, name)
    raise AttributeError(f"module 'mcphive' has no attribute {name!r}")
