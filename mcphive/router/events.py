"""Per-task progress events: kept for late subscribers, streamed to live ones; credentials redacted on the way in."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from mcphive.redaction import redact_value
from mcphive.types import Event

__all__ = ["EventBus", "describe"]

_MAX_EVENTS_PER_TASK = 2000


class EventBus:
    """Publishes :class:`Event`s per task; ``subscribe`` replays the past, then follows until ``finished``."""

    def __init__(self) -> None:
        self._history: dict[str, list[Event]] = {}
        self._subscribers: dict[str, list[MemoryObjectSendStream[Event]]] = {}

    def publish(self, task_id: str, kind: str, data: dict[str, Any] | None = None) -> Event:
        """Record and fan out one event; credentials in its data (tool arguments, errors) are redacted first."""
        event = Event(task_id=task_id, kind=kind, data=redact_value(data) if data else {})
        history = self._history.setdefault(task_id, [])
        if len(history) < _MAX_EVENTS_PER_TASK:
            history.append(event)
        for stream in self._subscribers.get(task_id, []):
            # A stalled consumer loses events rather than stalling the task.
            with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError):
                stream.send_nowait(event)
        if kind == "finished":
            for stream in self._subscribers.pop(task_id, []):
                stream.close()
        return event

    def history(self, task_id: str) -> list[Event]:
        """Every event of the task so far."""
        return list(self._history.get(task_id, []))

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
    d = event.data
    if event.kind == "routed":
        confidence = f", {d.get('confidence', 0):.2f}" if detail else ""
        return f"routed to {d.get('agent') or 'nobody'} ({d.get('stage')}{confidence})"
    if event.kind == "tool_call":
        args = ", ".join(f"{k}={v}" for k, v in d.get("arguments", {}).items())
        return f"{d.get('chosen_by')}: {d.get('tool')}" + (f"({args})" if detail else "")
    if event.kind == "model" and detail:
        return f"model: {d.get('purpose')}"
    if event.kind == "finished":
        return f"finished: {d.get('status')}"
    return None
