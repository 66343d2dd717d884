"""The blocking episodic memory: every operation is one short SQLAlchemy transaction.

:class:`SyncEpisodicMemory` is the implementation; :class:`mcphive.memory.EpisodicMemory`
runs each of its methods in a worker thread so the event loop never blocks. Scripts and
tests that have no event loop may use this class directly.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from functools import lru_cache
from typing import Any, Self, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    Insert,
    Table,
    Update,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from mcphive.errors import UsageError
from mcphive.redaction import redact
from mcphive.types import Principal, Route, Task, TaskResult, TaskStatus, utcnow

from ._convert import FlatResult, TreeRows, build_result, flatten, redact_result, redact_route, redact_task, route_row
from ._engine import core_transaction, create_store_engine, migrate, transaction, writer
from ._tables import RouteDecisionRow, StepRow, TaskRow, ToolCallRow

__all__ = ["SyncEpisodicMemory", "TaskSummary"]

_MAX_RECALL_WORDS = 16

_TASKS, _ROUTES, _STEPS, _CALLS = (
    cast(Table, row.__table__) for row in (TaskRow, RouteDecisionRow, StepRow, ToolCallRow)
)
# Core statements on the tables (not the ORM bulk path), built once: the hot writes of every task.
# A statement built per call costs more than SQLite takes to run it. Column names equal attribute
# names on these four tables.
_UPDATE_TASK = _TASKS.update().where(_TASKS.c.id == bindparam("task_key"))
_INSERT = {table.name: insert(table) for table in (_TASKS, _ROUTES, _STEPS, _CALLS)}
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_KNOWN = select(
    _TASKS.c.id,
    _TASKS.c.workspace,
    _TASKS.c.priority,
    _TASKS.c.finished_at,
    exists().where(_ROUTES.c.task_id == _TASKS.c.id).label("routed"),
    # Steps and calls exist only where a result was recorded before (a retry): only then delete them.
    or_(exists().where(_STEPS.c.task_id == _TASKS.c.id), exists().where(_CALLS.c.task_id == _TASKS.c.id)).label(
        "recorded"
    ),
).where(_TASKS.c.id.in_(_IDS))
_DELETE_CALLS = delete(_CALLS).where(_CALLS.c.task_id.in_(_IDS))
_DELETE_STEPS = delete(_STEPS).where(_STEPS.c.task_id.in_(_IDS))
# Recording a task id twice changes nothing: one statement where the dialect has ON CONFLICT.
_INSERT_NEW_TASK: dict[str, Insert] = {
    "sqlite": sqlite.insert(_TASKS).on_conflict_do_nothing(index_elements=[_TASKS.c.id]),
    "postgresql": postgresql.insert(_TASKS).on_conflict_do_nothing(index_elements=[_TASKS.c.id]),
}


@lru_cache(maxsize=8)
def _status_update(error: bool, starts: bool, ends: bool) -> Update:
    """The UPDATE of :meth:`SyncEpisodicMemory.set_status` for one shape of change."""
    now = bindparam("now", type_=_TASKS.c.started_at.type)
    values: dict[str, Any] = {"status": bindparam("status")}
    if error:
        values["error"] = bindparam("error")
    if starts:
        values["started_at"] = func.coalesce(_TASKS.c.started_at, now)
    if ends:
        values["finished_at"] = func.coalesce(_TASKS.c.finished_at, now)
    return _UPDATE_TASK.values(values)


class TaskSummary(BaseModel):
    """One line of ``mcphive history``: a task without its steps."""

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str
    agent: str | None
    status: TaskStatus
    created_at: datetime
    duration_s: float | None = None
    """Seconds from start (or creation, if it never started) to finish; ``None`` while unfinished."""
    subtasks: int = 0
    """How many steps the task's plan has recorded (0: it ran as one task)."""


_CHILD = aliased(TaskRow)
_SUMMARY_COLUMNS = (
    TaskRow.id,
    TaskRow.text,
    TaskRow.agent,
    TaskRow.status,
    TaskRow.created_at,
    TaskRow.started_at,
    TaskRow.finished_at,
    select(func.count()).where(_CHILD.parent_id == TaskRow.id).correlate(TaskRow).scalar_subquery().label("subtasks"),
)


def _summary(row: Any) -> TaskSummary:
    duration = None
    if row.finished_at is not None:
        duration = (row.finished_at - (row.started_at or row.created_at)).total_seconds()
    return TaskSummary(
        id=row.id,
        text=row.text,
        agent=row.agent,
        status=row.status,
        created_at=row.created_at,
        duration_s=duration,
        subtasks=row.subtasks,
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _owned_by(principal: Principal | None) -> list[ColumnElement[bool]]:
    if principal is None:
        return []
    return [TaskRow.tenant == principal.tenant, TaskRow.user_name == principal.user]


def _recall_words(query: str) -> list[str]:
    # One-letter words match nearly everything and would drown the ranking.
    words = [word for word in re.findall(r"\w+", query.lower()) if len(word) > 1]
    return list(dict.fromkeys(words))[:_MAX_RECALL_WORDS]


def _match_score(words: Sequence[str]) -> ColumnElement[int]:
    text, answer = func.lower(TaskRow.text), func.lower(TaskRow.answer)
    terms: list[ColumnElement[int]] = []
    for word in words:
        pattern = f"%{_like_escape(word)}%"
        hit = or_(text.like(pattern, escape="\\"), answer.like(pattern, escape="\\"))
        terms.append(case((hit, 1), else_=0))
    score = terms[0]
    for term in terms[1:]:
        score = score + term
    return score


class SyncEpisodicMemory:
    """What every task asked, how it was routed, each step and tool call, and how it ended.

    Args:
        engine: an engine whose database is already at the newest schema; use :meth:`open`
            to create one from a URL and migrate it.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    @classmethod
    def open(cls, url: str) -> Self:
        """Open (creating and migrating as needed) the database at ``url``.

        Raises:
            StoreError: the URL is invalid, the file or server cannot be reached, or migration failed.
        """
        engine = create_store_engine(url)
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        """The engine shared with :class:`~mcphive.memory.KnowledgeBase`."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection; the object must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _session(self, what: str, *, write: bool = False) -> AbstractContextManager[Session]:
        return transaction(self._writer if write else self._engine, what)

    def record_task(self, task: Task, status: TaskStatus = TaskStatus.QUEUED) -> None:
        """Insert ``task`` (its credentials redacted) with ``status``; recording the same id again changes nothing."""
        task = redact_task(task)
        row = {
            "id": task.id,
            "text": task.text,
            "workspace": task.workspace,
            "priority": task.priority.value,
            "requested_agent": task.agent,
            "agent": task.agent,
            "status": status.value,
            "tenant": task.principal.tenant,
            "user_name": task.principal.user,
            "created_at": task.created_at,
        }
        statement = _INSERT_NEW_TASK.get(self._engine.dialect.name)
        with core_transaction(self._writer, f"record task {task.id}") as connection:
            if statement is not None:
                connection.execute(statement, [row])
            elif connection.scalar(select(_TASKS.c.id).where(_TASKS.c.id == task.id)) is None:
                connection.execute(_INSERT["tasks"], [row])

    def _require(self, session: Session, task_id: str) -> None:
        if session.scalar(select(TaskRow.id).where(TaskRow.id == task_id)) is None:
            raise UsageError(f"no task {task_id!r} in memory; record_task() it before recording what happened to it")

    def record_route(self, task_id: str, route: Route) -> None:
        """Add a routing decision to a recorded task; the newest one is its route.

        Raises:
            UsageError: no task ``task_id`` was recorded.
        """
        route = redact_route(route)
        with self._session(f"record the route of task {task_id}", write=True) as session:
            self._require(session, task_id)
            session.execute(insert(_ROUTES), [route_row(task_id, route, utcnow())])

    def set_status(self, task_id: str, status: TaskStatus, *, error: str | None = None) -> None:
        """Move a recorded task to ``status``, stamping its start and finish times on the way.

        Raises:
            UsageError: no task ``task_id`` was recorded.
        """
        params: dict[str, Any] = {"task_key": task_id, "status": status.value, "now": utcnow()}
        if error is not None:
            params["error"] = redact(error)
        statement = _status_update(error is not None, status is TaskStatus.RUNNING, status.terminal)
        with core_transaction(self._writer, f"set the status of task {task_id}") as connection:
            result = connection.execute(statement, params)
            if cast(CursorResult[Any], result).rowcount == 0:
                raise UsageError(f"no task {task_id!r} in memory; record_task() it before setting its status")

    def record_result(self, result: TaskResult) -> None:
        """Store ``result`` and its subtasks in one transaction: all of it, or nothing.

        The task rows are updated (or created, for tasks never recorded), the route is written
        unless the task already has one, and earlier steps and tool calls of these tasks are
        replaced, so recording the same result twice stores it once. Tool-call result text
        longer than :data:`~mcphive.memory.RESULT_CAP` characters is truncated and marked.

        Credentials anywhere in the tree are redacted first, *in place* (see
        :func:`~mcphive.memory._convert.redact_result`): what the caller holds afterwards is what
        was stored, and nothing raw reaches a row.

        Raises:
            UsageError: two tasks of the tree share an id.
            StoreError: the database refused the write; nothing of ``result`` was stored.
        """
        redact_result(result)
        flat = flatten(result)
        with core_transaction(self._writer, f"record the result of task {result.task_id}") as connection:
            _write_result(connection, flat, result.task_id, utcnow())

    def get(self, task_id: str) -> TaskResult | None:
        """Rebuild the full TaskResult of ``task_id`` (steps, tool calls, subtasks), or ``None``."""
        with self._session(f"read task {task_id}") as session:
            rows = _load_tree(session, task_id)
        return build_result(task_id, rows) if rows is not None else None

    def recent(self, limit: int = 20, *, principal: Principal | None = None) -> list[TaskSummary]:
        """The newest top-level tasks first, only ``principal``'s when given."""
        if limit < 1:
            return []
        query = (
            select(*_SUMMARY_COLUMNS)
            .where(TaskRow.parent_id.is_(None), *_owned_by(principal))
            .order_by(TaskRow.created_at.desc(), TaskRow.id.desc())
            .limit(limit)
        )
        with self._session("list recent tasks") as session:
            return [_summary(row) for row in session.execute(query)]

    def recall(self, query: str, limit: int = 5, *, principal: Principal | None = None) -> list[TaskSummary]:
        """Past top-level tasks whose text or answer contain the words of ``query``.

        Matching is case-insensitive substring matching (portable ``LIKE``); tasks matching
        more distinct words come first, then newer ones.
        """
        words = _recall_words(query)
        if not words or limit < 1:
            return []
        score = _match_score(words)
        statement = (
            select(*_SUMMARY_COLUMNS)
            .where(TaskRow.parent_id.is_(None), score > 0, *_owned_by(principal))
            .order_by(score.desc(), TaskRow.created_at.desc(), TaskRow.id.desc())
            .limit(limit)
        )
        with self._session("search past tasks") as session:
            return [_summary(row) for row in session.execute(statement)]

    def resolve_id(self, prefix: str) -> str:
        """Return the one task id that starts with ``prefix`` (a full id matches itself).

        Raises:
            UsageError: no task id, or more than one, starts with ``prefix``.
        """
        prefix = prefix.strip()
        if not prefix:
            raise UsageError("empty task id; give a task id or its first characters (see `mcphive history`)")
        statement = (
            select(TaskRow.id)
            .where(TaskRow.id.like(f"{_like_escape(prefix)}%", escape="\\"))
            .order_by(TaskRow.id)
            .limit(6)
        )
        with self._session(f"look up task id {prefix!r}") as session:
            ids = list(session.scalars(statement))
        if prefix in ids:
            return prefix
        if not ids:
            raise UsageError(f"no task with id starting {prefix!r}; run `mcphive history` to list tasks")
        if len(ids) > 1:
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise UsageError(f"task id prefix {prefix!r} is ambiguous (matches {shown}); give more characters")
        return ids[0]


def _load_tree(session: Session, task_id: str) -> TreeRows | None:
    root = session.get(TaskRow, task_id)
    if root is None:
        return None
    tasks, children = {task_id: root}, defaultdict[str, list[str]](list)
    frontier = [task_id]
    while frontier:
        level = session.scalars(
            select(TaskRow).where(TaskRow.parent_id.in_(frontier)).order_by(TaskRow.parent_id, TaskRow.position)
        ).all()
        # Only rows not seen yet go on, so even a corrupted cycle of parent ids ends the walk.
        fresh = [row for row in level if row.id not in tasks]
        for row in fresh:
            tasks[row.id] = row
            children[cast(str, row.parent_id)].append(row.id)
        frontier = [row.id for row in fresh]
    ids = list(tasks)
    routes = {
        row.task_id: row
        for row in session.scalars(
            select(RouteDecisionRow).where(RouteDecisionRow.task_id.in_(ids)).order_by(RouteDecisionRow.id)
        )
    }
    steps, calls = defaultdict[str, list[StepRow]](list), defaultdict[str, list[ToolCallRow]](list)
    for step in session.scalars(select(StepRow).where(StepRow.task_id.in_(ids)).order_by(StepRow.position)):
        steps[step.task_id].append(step)
    call_order = (ToolCallRow.step_position, ToolCallRow.position)
    for call in session.scalars(select(ToolCallRow).where(ToolCallRow.task_id.in_(ids)).order_by(*call_order)):
        calls[call.task_id].append(call)
    return TreeRows(tasks=tasks, children=children, routes=routes, steps=steps, calls=calls)


def _write_result(connection: Connection, flat: FlatResult, root_id: str, now: datetime) -> None:
    known = {row.id: row for row in connection.execute(_KNOWN, {"ids": flat.ids})}
    root = known.get(root_id)
    inherited = {"workspace": root.workspace if root else "", "priority": root.priority if root else "normal"}
    updates, inserts = [], []
    for values in flat.tasks:
        row = known.get(values["id"])
        finished = row.finished_at if row is not None else None
        values["finished_at"] = (finished or now) if TaskStatus(values["status"]).terminal else finished
        if row is not None:
            updates.append({**values, "task_key": values.pop("id")})
        else:
            inserts.append({**values, **inherited, "requested_agent": None, "created_at": now})
    if updates:
        connection.execute(_UPDATE_TASK, updates)
    rerecorded = [task_id for task_id, row in known.items() if row.recorded]
    if rerecorded:
        connection.execute(_DELETE_CALLS, {"ids": rerecorded})
        connection.execute(_DELETE_STEPS, {"ids": rerecorded})
    routed = {task_id for task_id, row in known.items() if row.routed}
    routes = [route_row(task_id, route, now) for task_id, route in flat.routes.items() if task_id not in routed]
    for table, rows in ((_TASKS, inserts), (_ROUTES, routes), (_STEPS, flat.steps), (_CALLS, flat.calls)):
        if rows:
            connection.execute(_INSERT[table.name], rows)
