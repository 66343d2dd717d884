"""The idempotency ledger: every writing tool call that completed, so that a re-run task does not repeat it.

A task runs again after its worker died (the lease expired) or after it waited for approval. Its
writing calls (edits, commits, new files) are keyed by their place in the task and a hash of
server, tool and arguments (:func:`mcphive.agents.loop.call_key`); a call whose key is recorded
returns the recorded outcome instead of running again.

The ledger lives in the database that outlives the worker: the durable queue's when the queue is
durable (every worker process, on every host, sees it), otherwise the episodic memory's. A call is
recorded right after it returns and before its result is used; a worker that dies between the two
leaves the one call unrecorded, and the re-run makes it again (at least once, not exactly once —
that needs the tool's own cooperation).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError

from mcphive.agents.toolbox import ToolOutcome
from mcphive.errors import StoreError
from mcphive.memory._engine import core_transaction, run_blocking, writer
from mcphive.memory._tables import LedgerRow
from mcphive.redaction import redact_tree

__all__ = ["ToolLedger"]

_LEDGER: Table = LedgerRow.__table__  # type: ignore[assignment]
_C = _LEDGER.c


class ToolLedger:
    """Recorded outcomes of writing tool calls, by task and call key (see :class:`mcphive.agents.loop.Ledger`).

    Args:
        engine: a database migrated to the newest schema (it has ``tool_ledger``).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def recorded(self, task_id: str, key: str) -> ToolOutcome | None:
        """The outcome recorded for ``key`` of ``task_id``, or None when the call was never completed."""
        return await run_blocking(self._engine, lambda: self._recorded(task_id, key))

    def _recorded(self, task_id: str, key: str) -> ToolOutcome | None:
        query = select(_C.result, _C.structured, _C.is_error).where(_C.task_id == task_id, _C.call_key == key)
        with core_transaction(self._engine, "read the tool ledger") as session:
            row = session.execute(query).first()
        return None if row is None else ToolOutcome(row.result, row.structured, row.is_error, 0.0)

    async def record(
        self, task_id: str, key: str, server: str, tool: str, arguments: dict[str, Any], outcome: ToolOutcome
    ) -> None:
        """Record a completed call; a key recorded already (by an earlier run) keeps its first outcome.

        Arguments and outcome are stored with credentials redacted, like everything mcphive keeps; the
        key was computed from the raw arguments, so a replay still finds the call.
        """
        row = {
            "task_id": task_id,
            "call_key": key,
            "server": server,
            "tool": tool,
            "arguments": arguments,
            "result": outcome.text,
            "structured": outcome.structured,
            "is_error": outcome.is_error,
            "recorded_at": time.time(),
        }
        await run_blocking(self._engine, lambda: self._record(row))

    @staticmethod
    def _redacted(row: dict[str, Any]) -> dict[str, Any]:
        fields = ("arguments", "result", "structured")
        values, _ = redact_tree([row[name] for name in fields])
        return row | dict(zip(fields, values, strict=True))

    def _record(self, row: dict[str, Any]) -> None:
        try:
            with core_transaction(self._writer, "record a tool call in the ledger") as session:
                session.execute(insert(_LEDGER), [self._redacted(row)])
        except StoreError as e:
            if not isinstance(e.__cause__, IntegrityError):
                raise
            # Recorded by an earlier run of the task: the first outcome stands.

    def calls(self, task_id: str) -> list[dict[str, Any]]:
        """Every recorded call of ``task_id``, oldest first (for inspection and tests)."""
        query = select(_C.call_key, _C.tool, _C.arguments, _C.is_error).where(_C.task_id == task_id)
        with core_transaction(self._engine, "read the tool ledger") as session:
            rows = session.execute(query.order_by(_C.recorded_at)).all()
        return [row._asdict() for row in rows]
