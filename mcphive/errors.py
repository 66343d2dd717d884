"""The mcphive exception tree.

Three kinds of error, each with its own base class::

    MCPHiveError
    ├── UsageError                 the developer or user asked for something invalid; fix the call
    │   ├── ConfigError            mcphive.toml / MCPHIVE_* / flags are malformed or inconsistent
    │   ├── InvalidTask            empty, oversized or binary task text
    │   ├── UnknownAgent           an agent name that no spec defines
    │   └── WorkspaceError         missing workspace, or a path that escapes it
    ├── RunError                   the task was valid but could not be carried out
    │   ├── ModelUnavailable       no model backend can answer (not installed, server dead, no key)
    │   ├── TaskFailed             the agent loop ended in failure
    │   ├── TaskCancelled          somebody cancelled the task
    │   ├── TaskTimeout            the task ran past its time limit
    │   ├── QueueFull              the prioritizer refuses new work (backpressure)
    │   ├── BudgetExceeded         a token or cost limit stopped the task
    │   └── StoreError             a database or vector store failed
    └── ToolError                  sent back to the model (MCP ``is_error=True``) so it can retry

Every message says what was wrong and what to do. Library errors are translated at the
boundary with ``raise X(...) from e``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "InvalidTask",
    "MCPHiveError",
    "ModelUnavailable",
    "QueueFull",
    "RunError",
    "StoreError",
    "TaskCancelled",
    "TaskFailed",
    "TaskTimeout",
    "ToolError",
    "UnknownAgent",
    "UsageError",
    "WorkspaceError",
]


class MCPHiveError(Exception):
    """Base of every error mcphive raises on purpose."""


class UsageError(MCPHiveError):
    """The caller asked for something invalid; the message says how to fix the call."""


class ConfigError(UsageError):
    """Settings are malformed or inconsistent."""


class InvalidTask(UsageError):
    """Task text is empty, too long or not text."""


class UnknownAgent(UsageError):
    """An agent name that no spec defines."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown agent {name!r}; choose one of: {', '.join(self.known)}")


class WorkspaceError(UsageError):
    """A missing workspace, or a path that escapes the workspace root."""


class RunError(MCPHiveError):
    """A valid task could not be carried out."""


class ModelUnavailable(RunError):
    """No model backend can answer.

    ``transient`` marks failures worth retrying (connection refused, 429, 5xx); ``retry_after``
    carries the server's Retry-After in seconds when it sent one.
    """

    def __init__(self, message: str, *, transient: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class TaskFailed(RunError):
    """The agent loop ended in failure."""


class TaskCancelled(RunError):
    """The task was cancelled."""


class TaskTimeout(RunError):
    """The task ran past its time limit."""


class QueueFull(RunError):
    """The prioritizer is at capacity and refuses new work."""


class BudgetExceeded(RunError):
    """A token or cost budget stopped the task."""


class StoreError(RunError):
    """A database or vector store operation failed."""


class ToolError(MCPHiveError):
    """A tool failed in a way the model can react to; becomes an MCP result with ``is_error=True``."""
