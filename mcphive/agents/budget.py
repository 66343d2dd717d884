"""Token budgets: a soft limit that warns, a hard limit that stops the task and keeps what it did.

One :class:`Budget` is shared by a task and all of its subtasks, so a plan's steps draw on one
allowance and the total rolls up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mcphive.errors import BudgetExceeded
from mcphive.types import Usage

__all__ = ["Budget"]


@dataclass
class Budget:
    """Counts the tokens of every model call of a task tree against ``limit`` (None: unlimited)."""

    limit: int | None
    warn_fraction: float = 0.8
    used: int = 0
    warned: bool = field(default=False)

    def carry(self, usage: Usage) -> None:
        """Count tokens an earlier run of the task spent (a resumed or already finished run); the next charge
        warns or stops as if they had been charged here."""
        self.used += usage.input_tokens + usage.output_tokens

    async def charge(self, usage: Usage, emit: Callable[[str, dict[str, Any]], Awaitable[None]]) -> None:
        """Add one model call's tokens; warn once past the soft limit.

        Raises:
            BudgetExceeded: the hard limit is passed; the task stops with what it has done so far.
        """
        self.used += usage.input_tokens + usage.output_tokens
        if self.limit is None:
            return
        if not self.warned and self.used >= self.warn_fraction * self.limit:
            self.warned = True
            await emit("model", {"purpose": "budget", "warning": f"{self.used} of {self.limit} tokens used"})
        if self.used > self.limit:
            raise BudgetExceeded(
                f"the task used {self.used} tokens, over its budget of {self.limit}; "
                "what it did so far is kept — raise max_task_tokens or narrow the task"
            )
