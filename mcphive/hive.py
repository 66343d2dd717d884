"""The composition root: builds every part from Settings. Nothing else wires parts together.

``Hive.open`` owns one task group for the hive's lifetime: the MCP connection broker's
connections and the in-process workers that drain the prioritizer all live in it, and are
closed, in order, when the ``async with`` block ends.

Durability: with a durable queue every task's agent loop is checkpointed (SQLite, in
``data_dir/checkpoints.db``) so a task whose worker died resumes from its last completed step;
writing tool calls go through an idempotency ledger; and with ``approval = "writes"`` a task that
wants to write parks in ``awaiting_approval`` until :meth:`Hive.approve` or :meth:`Hive.reject`.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from mcphive._backends import build_model
from mcphive.agents.external import ExternalServers, pin_file
from mcphive.agents.spec import AgentSpec, specs_for
from mcphive.agents.toolbox import Connection, ConnectionBroker
from mcphive.errors import ConfigError, InvalidTask, StoreError, UnknownAgent, UsageError
from mcphive.inference.base import ChatModel
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.memory import build_memory_server
from mcphive.mcp_servers.state import StateStore, build_state_server
from mcphive.mcp_servers.workspace import build_workspace_server
from mcphive.memory import EpisodicMemory
from mcphive.policy import PinStore
from mcphive.redaction import install_log_redaction, redact
from mcphive.router.cascade import RoutingCascade
from mcphive.router.corrections import CorrectionLog
from mcphive.router.events import EventBus
from mcphive.router.ledger import ToolLedger
from mcphive.router.llm_router import LLMRouter
from mcphive.router.manager import AgentManager, ManagerDeps, Parked
from mcphive.router.plan_runner import goal_of, step_task_id
from mcphive.router.planner import MAX_PLAN_STEPS, Planner
from mcphive.router.queues import Claim, SqlQueue, TaskQueue, keep_alive, open_queue
from mcphive.router.semantic import SemanticRouter
from mcphive.router.slots import AgentSlots, LocalSlots, SqlSlots
from mcphive.settings import Settings, load_settings, planner_mode
from mcphive.types import (
    ApprovalDecision,
    ApprovalRequest,
    Event,
    Plan,
    Principal,
    Priority,
    Route,
    Task,
    TaskResult,
    TaskStatus,
)

__all__ = ["ApprovalCallback", "Hive", "TaskHandle"]

ApprovalAnswer = bool | ApprovalDecision | None
ApprovalCallback = Callable[[ApprovalRequest], ApprovalAnswer | Awaitable[ApprovalAnswer]]
"""Asked when a task parks for approval: True approves, False rejects, an ApprovalDecision says who and why,
None leaves the task waiting for someone else (``mcphive approve``)."""

log = logging.getLogger(__name__)

_KEEP_FINISHED = 1000
"""Finished tasks whose results and events stay in process memory; older ones are read back from the store."""

_WAIT_POLL_S = (0.02, 0.5)
"""The first and the longest pause between two looks at a task's record while waiting for a worker elsewhere."""


@dataclass
class _Pending:
    done: anyio.Event
    result: TaskResult | None = None
    running_here: bool = False
    """One of this hive's workers holds the task: its end sets ``done``, so ``wait`` need not poll the store."""


class TaskHandle:
    """A submitted task: ask its status, wait for its result, or cancel it."""

    def __init__(self, hive: Hive, task: Task) -> None:
        self._hive = hive
        self.task = task
        self.id = task.id

    async def status(self) -> TaskStatus:
        """Queued, running, or how it ended."""
        return await self._hive.status(self.id)

    async def wait(self) -> TaskResult:
        """Wait until the task ends and return its result."""
        return await self._hive.wait(self.id)

    async def cancel(self) -> bool:
        """Cancel the task if it has not ended; True if it was cancelled."""
        return await self._hive.cancel(self.id)


_STOPPED_UNFINISHED = "the hive stopped before the task finished (interrupted); the in-memory queue does not outlive it"

# Control characters a plain-text task may hold: tab, newline, carriage return, form feed, and ESC
# (pasted terminal output keeps its colour codes). Any other one marks bytes, not text.
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\x1b")


def _not_plain_text(text: str) -> str | None:
    """Why ``text`` is not plain text (binary data or undecodable bytes), or ``None`` when it is."""
    for position, char in enumerate(text):
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            # Undecodable bytes: Python hands a command line that is not valid UTF-8 over as lone
            # surrogates, which nothing downstream (the database, the embedder, a model) can encode.
            return f"is not valid UTF-8 (an undecodable byte at position {position})"
        if (code < 0x20 or 0x7F <= code < 0xA0) and char not in _ALLOWED_CONTROLS:
            name = "a NUL byte" if code == 0 else f"control character U+{code:04X}"
            return f"looks binary: it contains {name} at position {position}"
    return None


def _priority(value: Priority | str) -> Priority:
    try:
        return Priority(value)
    except ValueError:
        choices = ", ".join(p.value for p in Priority)
        raise UsageError(f"unknown priority {value!r}; choose one of: {choices}") from None


def known_tools() -> set[str]:
    """Every tool name an agent spec may list: the workspace toolsets and the state, memory and RAG servers."""
    from mcphive.mcp_servers.toolsets import all_tools
    from mcphive.mcp_servers.workspace import file_tools

    served = {
        "state_open",
        "state_watch",
        "state_get",
        "state_put",
        "state_list",
        "recall_tasks",
        "kb_assert",
        "kb_query",
        "search_docs",
        "list_sources",
    }
    return {tool.name for tool in [*file_tools(), *all_tools()]} | served


class Hive:
    """The running hive: route, submit and run tasks; follow their events."""

    def __init__(
        self,
        settings: Settings,
        task_group: TaskGroup,
        model: ChatModel | None,
        *,
        checkpointer: Any = None,
        on_approval: ApprovalCallback | None = None,
    ) -> None:
        install_log_redaction()  # no credential reaches a log record of mcphive's loggers
        self.settings = settings
        self.specs: dict[str, AgentSpec] = specs_for(settings.agents, known_tools(), settings.mcp_servers)
        self._on_approval = on_approval
        self._offered: set[tuple[str, str]] = set()
        self.memory = EpisodicMemory.open(
            settings.database_url,
            functional_predicates=settings.knowledge_functional,
            retention=timedelta(days=settings.memory_retention_days),
            consolidation_batch=settings.memory_consolidation_batch,
        )
        try:
            self._build(settings, model, task_group, checkpointer)
        except BaseException:
            self.memory.close()  # a bad queue or routing setting must not leave the database open
            raise

    def _build(self, settings: Settings, model: ChatModel | None, task_group: TaskGroup, checkpointer: Any) -> None:
        from mcphive.embeddings import configure_embedder, get_embedder

        self._bus = EventBus()
        self._model = model
        self._owns_model = model is None
        self._tg = task_group
        self._broker = ConnectionBroker(task_group)
        self._external = ExternalServers(settings.mcp_servers, PinStore(pin_file(settings)), self._broker)
        self._state = StateStore()
        self._pending: dict[str, _Pending] = {}
        self._finished: deque[str] = deque()
        self.corrections = CorrectionLog(settings.data_dir / "routing" / "corrections.jsonl")
        examples = {name: list(spec.examples) for name, spec in self.specs.items()}
        corrections = self.corrections.load()
        for correction in corrections:
            if correction.agent in examples:
                examples[correction.agent].append(correction.text)
        configure_embedder(settings.embedding_device)
        semantic = SemanticRouter(examples, get_embedder())
        self._semantic = semantic
        self.cascade = RoutingCascade(
            list(self.specs),
            {name: spec.rules for name, spec in self.specs.items()},
            semantic,
            threshold=settings.route_threshold,
            extra_rules=settings.rules,
            llm=LLMRouter({n: s.description for n, s in self.specs.items()}, self.model)
            if settings.llm_router
            else None,
            llm_below=settings.llm_router_below,
            corrections=[(c.text, c.agent) for c in corrections],
        )
        self.queue: TaskQueue = open_queue(settings)
        # The ledger outlives the worker: in the durable queue's database, which every worker shares.
        ledger = ToolLedger(self.queue.engine if isinstance(self.queue, SqlQueue) else self.memory.engine)
        mode = planner_mode(settings.planner)  # a bool from Settings.model_copy is not validated
        self._planner = Planner(self.cascade, use_model=mode == "model") if mode != "off" else None
        self.manager = AgentManager(
            ManagerDeps(
                specs=self.specs,
                cascade=self.cascade,
                memory=self.memory,
                events=self._bus,
                connections=self._connections,
                model=self.model,
                max_model_steps=settings.max_model_steps,
                task_timeout_s=settings.task_timeout_s,
                planner=self._planner,
                max_task_tokens=settings.max_task_tokens,
                approval_required=settings.approval == "writes",
                ledger=ledger,
                checkpointer=checkpointer,
                slots=self._slots(settings.agent_limits),
            )
        )

    def _slots(self, limits: dict[str, int]) -> AgentSlots | None:
        """Where runs of agents with a concurrency limit take their slots; None without limits."""
        if not limits:
            return None
        unknown = sorted(set(limits) - set(self.specs))
        if unknown:
            raise ConfigError(
                f"agent_limits names unknown agent(s) {', '.join(map(repr, unknown))}; "
                f"choose among: {', '.join(self.specs)}"
            )
        if isinstance(self.queue, SqlQueue):
            return SqlSlots(self.queue.engine, limits, poll_s=self.queue.poll_s)
        return LocalSlots(limits)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        model: ChatModel | None = None,
        on_approval: ApprovalCallback | None = None,
        **overrides: Any,
    ) -> AsyncIterator[Hive]:
        """Open a hive. ``settings=None`` reads mcphive.toml and MCPHIVE_* (``overrides`` win).

        Args:
            settings: a ready Settings object, or None to load one.
            model: a ChatModel to use instead of the one Settings chooses (tests pass a scripted one).
            on_approval: asked (sync or async) for each writing call a task of this hive waits to have
                approved (``approval = "writes"``); see :data:`ApprovalCallback`.
            **overrides: Settings fields, e.g. ``data_dir=...``.
        """
        if settings is None:
            settings = load_settings(**overrides)
        elif overrides:
            settings = settings.model_copy(update=overrides)
        if settings.otlp_endpoint:
            from mcphive.tracing import configure_otlp

            configure_otlp(settings.otlp_endpoint)
        try:
            async with _checkpoints(settings) as checkpointer, anyio.create_task_group() as tg:
                hive = cls(settings, tg, model, checkpointer=checkpointer, on_approval=on_approval)
                try:
                    for number in range(settings.workers):
                        tg.start_soon(hive._worker, f"{socket.gethostname()}:{os.getpid()}:{number}")
                    yield hive
                finally:
                    await hive._close()
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The task group wraps the caller's own exception; hand it back unwrapped.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    @classmethod
    def open_sync(cls, settings: Settings | None = None, **overrides: Any) -> Any:
        """A blocking facade for scripts: ``hive = Hive.open_sync(); hive.run(...); hive.close()``."""
        from mcphive._sync import SyncHive

        return SyncHive(settings, overrides)

    async def _close(self) -> None:
        with anyio.CancelScope(shield=True):  # also when closing because the caller was cancelled (Ctrl-C)
            await self._abandon_unfinished()
        await self._broker.aclose()
        self.queue.close()
        if self._owns_model and (close := getattr(self._model, "aclose", None)) is not None:
            await close()  # e.g. the pool's health/metrics monitor task
        self.memory.close()

    async def _abandon_unfinished(self) -> None:
        """With the in-memory queue, a task this hive has not finished never will: record it as cancelled.

        Otherwise an interrupted ``mcphive run`` left its task "running" in the history for ever. A durable
        queue needs nothing: another worker resumes the task once its lease runs out.
        """
        if self.settings.queue != "memory":
            return
        for task_id, pending in list(self._pending.items()):
            if pending.result is None:
                await self.memory.set_status(task_id, TaskStatus.CANCELLED, error=_STOPPED_UNFINISHED)

    @property
    def state_store(self) -> StateStore:
        """The hive's shared blackboard (what the state server serves)."""
        return self._state

    def model(self) -> ChatModel:
        """The ChatModel tasks use, built on first use from Settings."""
        if self._model is None:
            self._model = build_model(self.settings)
        return self._model

    @property
    def principal(self) -> Principal:
        """Who this hive acts for, from Settings."""
        return Principal(tenant=self.settings.tenant, user=self.settings.user)

    async def _connections(self, task: Task) -> list[Connection]:
        root = Jail(task.workspace).root
        connections = [
            await self._broker.connect(f"workspace:{root}", "workspace", lambda: build_workspace_server(root)),
            await self._broker.connect("state", "state", lambda: build_state_server(self._state)),
            await self._broker.connect("memory", "memory", lambda: build_memory_server(self.memory, self.principal)),
        ]
        # search_docs exists once something was ingested; opening chromadb before that is wasted start-up.
        if self.settings.rag_chroma_url or self.settings.rag_dir.exists():
            connections.append(await self._broker.connect("rag", "rag", self.rag_server))
        connections += await self._external.connections()  # settings' [[mcp_servers]], as <server>.<tool>
        return connections

    def rag_server(self) -> Any:
        """A RAG MCP server over the configured store (``data_dir/rag``, or the chroma server at ``rag_chroma_url``).

        Built per call; the broker keeps one.
        """
        from mcphive.embeddings import get_embedder
        from mcphive.mcp_servers.rag import build_rag_server
        from mcphive.rag import DocumentStore

        return build_rag_server(DocumentStore.from_settings(self.settings, get_embedder()))

    def _validate(self, text: str, agent: str | None) -> str:
        problem = _not_plain_text(text)
        if problem:
            raise InvalidTask(f"task text {problem}; send plain text (UTF-8)")
        cleaned = text.strip()
        if not cleaned:
            raise InvalidTask("task text is empty; say what the agent should do, e.g. 'find hard-coded secrets'")
        if len(cleaned) > self.settings.max_task_chars:
            raise InvalidTask(
                f"task text is {len(cleaned)} characters, over the {self.settings.max_task_chars} "
                "limit; shorten it or raise max_task_chars"
            )
        if agent is not None and agent not in self.specs:
            raise UnknownAgent(agent, self.specs)
        return cleaned

    async def route(self, text: str) -> Route:
        """Which agent would take ``text``; out-of-scope text gets ``agent=None``, never an exception."""
        return await self.cascade.route(self._validate(text, None))

    async def plan(self, text: str) -> Plan | None:
        """How :meth:`run` would split ``text``: the template's plan, or None when it runs as one task.

        (With ``planner = "model"`` a request the template leaves whole is planned by the model when it runs,
        not here: previewing should not cost a model call.)
        """
        text = self._validate(text, None)
        return await self._planner.from_template(text) if self._planner is not None else None

    async def explain(self, text: str) -> dict[str, Any]:
        """The route of ``text`` with every agent's semantic score and the threshold, for ``route --explain``."""
        route = await self.route(text)
        scores = await self._semantic.scores(text.strip())
        return {"route": route.model_dump(mode="json"), "scores": [c.model_dump() for c in scores],
                "threshold": self.cascade.threshold}  # fmt: skip

    async def correct(self, task_id: str, agent: str) -> None:
        """Say that task ``task_id`` should have gone to ``agent``; the router learns it, now and after restarts.

        Raises:
            UnknownAgent: no such agent.
            UsageError: no such task.
        """
        if agent not in self.specs:
            raise UnknownAgent(agent, self.specs)
        task = await self._recorded(await self.memory.resolve_id(task_id))
        text = goal_of(task.text)  # a plan's step learns from its own clause, not the brief around it
        self.corrections.append(task.task_id, text, agent)
        self.cascade.learn(text, agent)
        await self._semantic.add_example(agent, text)

    async def submit(
        self,
        text: str,
        *,
        workspace: str | Path = ".",
        priority: Priority | str = Priority.NORMAL,
        agent: str | None = None,
    ) -> TaskHandle:
        """Queue a task for the in-process workers and return its handle at once.

        A credential in ``text`` is redacted before the task is recorded or queued: no agent needs it,
        and a durable queue would keep it.
        """
        task = Task(
            text=redact(self._validate(text, agent)),
            workspace=str(Jail(workspace).root),
            priority=_priority(priority),
            agent=agent,
            principal=self.principal,
        )
        await self.memory.record_task(task)
        self._pending[task.id] = _Pending(anyio.Event())
        try:
            await self.queue.put(task)
        except Exception:
            self._pending.pop(task.id)
            await self.memory.set_status(task.id, TaskStatus.FAILED, error="queue full")
            raise
        self._bus.publish(task.id, "queued", {"priority": task.priority.value})
        return TaskHandle(self, task)

    async def run(
        self,
        text: str,
        *,
        workspace: str | Path = ".",
        priority: Priority | str = Priority.NORMAL,
        agent: str | None = None,
    ) -> TaskResult:
        """Submit a task and wait for its result."""
        handle = await self.submit(text, workspace=workspace, priority=priority, agent=agent)
        return await handle.wait()

    async def _worker(self, worker_id: str) -> None:
        while True:
            # The queue's claim yields before it claims: the finished task's waiters run first, and a task
            # they submit then can go straight to this worker (the durable queue's hand-off).
            claim = await self.queue.claim(worker_id)
            await self._run_claim(claim, worker_id)

    async def _run_claim(self, claim: Claim, worker_id: str) -> None:
        """Run one claimed task, keeping its lease alive; a lease lost to another worker abandons the run.

        A run that stopped for an approval parks the task in the queue and frees this worker.
        """
        outcome: TaskResult | Parked | None = None
        pending = self._pending.get(claim.task.id)
        if pending is not None:
            pending.running_here = True
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_alive, self.queue, claim, worker_id, tg.cancel_scope)
                outcome = await self.manager.execute(claim.task, claim.decisions)
                tg.cancel_scope.cancel()
        finally:
            if pending is not None:
                pending.running_here = False
        if outcome is None:
            log.warning("lost the lease on task %s; another worker runs it now", claim.task.id)
            return
        if isinstance(outcome, Parked):
            if await self.queue.park(claim.task, worker_id, outcome.request):
                self._bus.publish(claim.task.id, "awaiting_approval", outcome.request.model_dump(mode="json"))
                self._tg.start_soon(self._offer, outcome.request)
            return
        ok = outcome.status is TaskStatus.SUCCEEDED
        if await self.queue.finish(claim.task.id, worker_id, ok=ok, error=outcome.error or ""):
            await self.manager.forget(claim.task.id, [sub.task_id for sub in outcome.subtasks])
        self._settle(claim.task.id, outcome)

    async def approve(self, task_id: str, *, by: str | None = None, reason: str = "") -> ApprovalRequest:
        """Approve the writing call task ``task_id`` waits on; the task is queued again and makes the call.

        Args:
            task_id: the task, or a unique prefix of its id.
            by: who approves (default: this hive's user).
            reason: kept with the decision.

        Returns:
            The call that was approved.

        Raises:
            UsageError: no such task, or it is not awaiting approval (in this hive's queue).
        """
        decision = ApprovalDecision(approved=True, by=by or self.settings.user, reason=reason)
        return await self._decide(task_id, decision)

    async def reject(self, task_id: str, reason: str = "", *, by: str | None = None) -> ApprovalRequest:
        """Reject the writing call task ``task_id`` waits on: the call is not made, the task goes on without it.

        The agent gets "rejected by <who>: <reason>" as the call's result and continues (it may finish,
        or choose another tool). Raises :class:`UsageError` as :meth:`approve` does.
        """
        decision = ApprovalDecision(approved=False, by=by or self.settings.user, reason=reason)
        return await self._decide(task_id, decision)

    async def pending_approval(self, task_id: str) -> ApprovalRequest | None:
        """The writing call task ``task_id`` waits to have approved, or None when it is not waiting."""
        return await self.queue.pending(await self.memory.resolve_id(task_id))

    async def _decide(self, task_id: str, decision: ApprovalDecision) -> ApprovalRequest:
        task_id = await self.memory.resolve_id(task_id)
        if await self.queue.pending(task_id) is None:
            status = (await self._recorded(task_id)).status
            if status is TaskStatus.AWAITING_APPROVAL and not self.queue.durable:
                raise UsageError(
                    f"task {task_id} awaits approval in another process; with queue = 'memory' only the hive that "
                    "runs a task can decide on it: set queue = 'sqlite' (or 'postgres') to approve from anywhere"
                )
            raise UsageError(f"task {task_id} is {status.value}, not awaiting approval; there is nothing to decide")
        # Queued before the decision frees the task, so a worker's "running" is never overwritten.
        await self.memory.set_status(task_id, TaskStatus.QUEUED)
        request = await self.queue.decide(task_id, decision)
        if request is None:
            raise UsageError(f"task {task_id} was decided by someone else a moment ago; see `mcphive history`")
        self._bus.publish(task_id, "queued", {"approval": decision.model_dump(mode="json"), "tool": request.tool})
        return request

    async def _offer(self, request: ApprovalRequest) -> None:
        """Ask the ``on_approval`` callback about ``request`` (once) and apply its answer."""
        key = (request.task_id, request.call_key)
        if self._on_approval is None or key in self._offered:
            return
        self._offered.add(key)
        try:
            answer = self._on_approval(request)
            if inspect.isawaitable(answer):
                answer = await answer
            if answer is None:
                return  # someone else decides
            if not isinstance(answer, ApprovalDecision):
                answer = ApprovalDecision(approved=bool(answer), by=self.settings.user)
            await self._decide(request.task_id, answer)
        except Exception:  # a failing callback leaves the task waiting; it must not take the hive down
            log.exception("the approval callback failed on task %s; it stays awaiting approval", request.task_id)

    def _settle(self, task_id: str, result: TaskResult) -> None:
        """Hand a finished task's result to its waiters; keep only the newest finished tasks in process memory.

        A long-running hive (``mcphive serve``, a worker) would otherwise hold every result and event it ever
        saw; older ones are still read from the episodic memory by ``wait``, ``status`` and history.
        """
        pending = self._pending.get(task_id)
        if pending is not None:
            pending.result = result
            pending.done.set()
        self._finished.append(task_id)
        while len(self._finished) > _KEEP_FINISHED:
            old = self._finished.popleft()
            self._pending.pop(old, None)
            self._bus.forget(old)

    async def serve_forever(self) -> None:
        """Let the workers drain the queue until cancelled (what ``mcphive worker`` does)."""
        await anyio.sleep_forever()

    async def status(self, task_id: str) -> TaskStatus:
        """The task's current status (from memory, so tasks of earlier runs are found too)."""
        pending = self._pending.get(task_id)
        if pending is not None and pending.result is not None:
            return pending.result.status
        return (await self._recorded(task_id)).status

    async def _recorded(self, task_id: str) -> TaskResult:
        result = await self.memory.get(task_id)
        if result is None:
            raise UsageError(f"no task with id {task_id!r}; run `mcphive history` to list tasks")
        return result

    async def wait(self, task_id: str) -> TaskResult:
        """Wait for a task to end and return its result.

        A task this hive's own workers run is awaited on an event; with a durable queue, any worker process may
        run it, so the task's record in memory is also polled until it has ended, after 20 ms at first and
        backing off to every half second (a task that runs here still ends the wait at once).
        """
        pending = self._pending.get(task_id)
        if pending is None and not self.queue.durable:
            return await self._recorded(task_id)
        poll_s, longest = (max(self.settings.queue_poll_s, limit) for limit in _WAIT_POLL_S)
        while True:
            if pending is not None:
                # Running here: look at the store again only after a lease's length (its loss ends the run here).
                timeout = self.settings.queue_lease_s if pending.running_here else poll_s
                with anyio.move_on_after(timeout if self.queue.durable else math.inf):
                    await pending.done.wait()
                if pending.result is not None:
                    return pending.result
            recorded = await self._recorded(task_id)
            if recorded.status.terminal:
                return recorded
            if recorded.status is TaskStatus.AWAITING_APPROVAL and self._on_approval is not None:
                # Parked by a worker in another process: this hive's callback still answers for it.
                request = await self.queue.pending(task_id)
                if request is not None:
                    await self._offer(request)
            if pending is None:
                await anyio.sleep(poll_s)
            poll_s = min(poll_s * 2, longest)

    async def cancel(self, task_id: str) -> bool:
        """Cancel a queued or running task; False if it had already ended."""
        if await self.queue.remove(task_id):
            # An earlier run (its worker died) may have begun a plan: its steps' checkpoints go too.
            await self.manager.forget(task_id, [step_task_id(task_id, f"s{n}") for n in range(1, MAX_PLAN_STEPS + 1)])
            result = TaskResult(task_id=task_id, text="", status=TaskStatus.CANCELLED, error="cancelled before it ran")
            await self.memory.set_status(task_id, TaskStatus.CANCELLED, error=result.error)
            self._bus.publish(task_id, "finished", {"status": "cancelled"})
            self._settle(task_id, (await self.memory.get(task_id)) or result)
            return True
        return self.manager.cancel(task_id)

    def events_so_far(self, task_id: str) -> list[Event]:
        """The task's events up to now, without waiting."""
        return self._bus.history(task_id)

    def events(self, task_id: str) -> AsyncIterator[Event]:
        """The task's events: those so far, then live ones until it finishes."""
        return self._bus.subscribe(task_id)


@asynccontextmanager
async def _checkpoints(settings: Settings) -> AsyncIterator[Any]:
    """The agent loop's checkpoint saver: in the PostgreSQL queue's database, SQLite beside a SQLite queue, in
    memory for approvals with the in-process queue, else none.

    With a durable queue a re-delivered task resumes from its last completed step in any worker that
    shares the queue (PostgreSQL: on any host; SQLite: any process sharing ``data_dir``). With the
    in-process queue nothing outlives the process, so checkpoints are kept in memory, and only when a
    task can park for approval.
    """
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from mcphive.inference.base import ModelToolCall
    from mcphive.types import Step, ToolCall, Usage

    serde = JsonPlusSerializer(allowed_msgpack_modules=[Step, ToolCall, Usage, ModelToolCall])
    if settings.queue == "memory":
        if settings.approval == "never":
            yield None
            return
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver(serde=serde)
        return
    if settings.queue == "postgres":
        async with _postgres_checkpoints(settings.queue_database_url, serde) as saver:
            yield saver
        return
    from mcphive.router.checkpoints import sqlite_checkpoints

    with sqlite_checkpoints(settings.data_dir / "checkpoints.db", serde) as saver:
        yield saver


async def _check_postgres(conninfo: str, *, shown: str, connect_timeout: int = 10) -> None:
    """One direct connection first: a dead or misnamed database is one clear error at once, where the
    connection pool would log a warning per retry and give up only after its 30 s wait, with no cause.

    Raises:
        StoreError: the server refused, timed out, or rejected the login or database name.
    """
    import psycopg

    try:
        connection = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=connect_timeout)
    except psycopg.Error as e:
        cause = " ".join(str(e).split()) or type(e).__name__
        raise StoreError(
            f"cannot reach the queue database {shown}: {cause}; check queue_url and that PostgreSQL is running"
        ) from e
    await connection.close()


@asynccontextmanager
async def _postgres_checkpoints(url: str, serde: Any) -> AsyncIterator[Any]:
    """LangGraph's PostgreSQL saver on the queue's database (its own tables, created once), over a small pool."""
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
    except ImportError as e:
        raise ConfigError(
            "queue 'postgres' keeps task checkpoints in PostgreSQL: pip install 'mcphive[postgres]'"
        ) from e
    from sqlalchemy import make_url

    # SQLAlchemy's driver suffix (postgresql+psycopg://) is not a libpq URL.
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    await _check_postgres(conninfo, shown=make_url(url).render_as_string(hide_password=True))
    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    async with AsyncConnectionPool(conninfo, min_size=1, max_size=4, kwargs=kwargs, open=False) as pool:
        saver = AsyncPostgresSaver(pool, serde=serde)  # type: ignore[arg-type]
        await saver.setup()
        yield saver
