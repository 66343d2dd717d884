"""Per-task progress events: kept for late subscribers, streamed to live ones; credentials redacted on the way out.

An event's data is redacted before anyone outside the bus sees it: at once when the task has a live
subscriber, else when its history is first read, one batch for all the events not yet redacted.
Most tasks' histories are never read, so most events are never scanned (a task publishes about
eight, and scanning them one by one took ~5 % of a short task's time).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from mcphive.redaction import redact_tree
from mcphive.types import Event, PlanStep, utcnow

__all__ = ["EventBus", "describe"]

_MAX_EVENTS_PER_TASK = 2000


@dataclass
class _Entry:
    """One published event: its data raw until first read, then the redacted :class:`Event`."""

    kind: str
    data: dict[str, Any]
    at: datetime
    event: Event | None = None


class EventBus:
    """Publishes :class:`Event`s per task; ``subscribe`` replays the past, then follows until ``finished``."""

    def __init__(self) -> None:
        self._history: dict[str, list[_Entry]] = {}
        self._subscribers: dict[str, list[MemoryObjectSendStream[Event]]] = {}

    def publish(self, task_id: str, kind: str, data: dict[str, Any] | None = None) -> None:
        """Record and fan out one event; credentials in its data (tool arguments, errors) never leave the bus.

        The bus takes ``data`` over: the caller must not change it afterwards (it may be redacted later).
        """
        entry = _Entry(kind, data or {}, utcnow())
        history = self._history.setdefault(task_id, [])
        if len(history) < _MAX_EVENTS_PER_TASK:
            history.append(entry)
        streams = self._subscribers.get(task_id, [])
        if streams:
            [event] = self._redact(task_id, [entry])
            for stream in streams:
                # A stalled consumer loses events rather than stalling the task.
                with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError):
                    stream.send_nowait(event)
        if kind == "finished":
            for stream in self._subscribers.pop(task_id, []):
                stream.close()

    @staticmethod
    def _redact(task_id: str, entries: list[_Entry]) -> list[Event]:
        """The events of ``entries``, redacting in one batch those not redacted yet."""
        raw = [entry for entry in entries if entry.event is None]
        if raw:
            clean, _ = redact_tree([entry.data for entry in raw])
            for entry, data in zip(raw, clean, strict=True):
                entry.event = Event(task_id=task_id, kind=entry.kind, data=data, at=entry.at)
        return [cast(Event, entry.event) for entry in entries]  # every one set just above

    def history(self, task_id: str) -> list[Event]:
        """Every event of the task so far."""
        return self._redact(task_id, self._history.get(task_id, []))

    def forget(self, task_id: str) -> None:
        """Drop a finished task's history."""
        self._history.pop(task_id, None)

    async def subscribe(self, task_id: str) -> AsyncIterator[Event]:
        """Past events, then live ones, ending after the ``finished`` event."""
        past = self.history(task_id)
        if past and past[-1].kind == "finished":
            for event in past:
                yield event
            return
        # Subscribe before replaying: events published while the caller consumes the past are buffered.
        send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=1000)
        self._subscribers.setdefault(task_id, []).append(send)
        try:
            async with receive:
                for event in past:
                    yield event
                async for event in receive:
                    yield event
        finally:
            # A subscriber that stops early (a client that got what it waited for) unsubscribes.
            streams = self._subscribers.get(task_id, [])
            if send in streams:
                streams.remove(send)
                if not streams:
                    del self._subscribers[task_id]
            send.close()


def describe(event: Event, *, detail: bool = False) -> str | None:
    """A one-line, human description of a progress event, or None for events not worth a line.

    ``detail`` adds the routing confidence, tool arguments and model calls (the CLI's live display);
    without it the line is short enough for an MCP progress notification.
    """
    line = _line(event, detail)
    step = event.data.get("plan_step")  # an event of a plan's step: steps run in parallel, so say whose
    return f"{step} · {line}" if line is not None and step else line


def _line(event: Event, detail: bool) -> str | None:
    d = event.data
    if event.kind == "planned":
        return f"planned: {', '.join(PlanStep.model_validate(s).label() for s in d.get('steps', []))}"
    if event.kind == "routed":
        confidence = f", {d.get('confidence', 0):.2f}" if detail else ""
        return f"routed to {d.get('agent') or 'nobody'} ({d.get('stage')}{confidence})"
    if event.kind == "waiting":
        return f"waiting: {d.get('agent')} is at its limit of {d.get('limit')} running at once"
    if event.kind == "tool_call":
        args = ", ".join(f"{k}={v}" for k, v in d.get("arguments", {}).items())
        return f"{d.get('chosen_by')}: {d.get('tool')}" + (f"({args})" if detail else "")
    if event.kind == "model" and detail:
        return f"model: {d.get('purpose')}"
    if event.kind == "finished":
        return f"finished: {d.get('status')}"
    return None
