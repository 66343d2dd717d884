"""The blocking facade over :class:`~mcphive.hive.Hive` for scripts and notebooks.

A private event loop runs in a background thread (an anyio blocking portal); each method sends
one coroutine to it and waits.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskStatus
from anyio.from_thread import BlockingPortal, start_blocking_portal

from mcphive.errors import UsageError
from mcphive.settings import Settings
from mcphive.types import Route, TaskResult

__all__ = ["SyncHive"]


class SyncHive:
    """``Hive`` with blocking methods; close it (or use ``with``) to stop its loop."""

    def __init__(self, settings: Settings | None, overrides: dict[str, Any]) -> None:
        self._closed = False
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        try:
            self._stop: anyio.Event = self._portal.call(anyio.Event)
            # The hive is entered and exited inside one task of the portal's loop, as anyio requires.
            self._lifetime, self._hive = self._portal.start_task(self._live, settings, overrides)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise

    async def _live(
        self,
        settings: Settings | None,
        overrides: dict[str, Any],
        *,
        task_status: TaskStatus[Any] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        from mcphive.hive import Hive

        async with Hive.open(settings, **overrides) as hive:
            task_status.started(hive)
            await self._stop.wait()

    def run(self, text: str, **kwargs: Any) -> TaskResult:
        """Run a task to its end (see ``Hive.run``)."""
        result: TaskResult = self._open_portal().call(lambda: self._hive.run(text, **kwargs))
        return result

    def route(self, text: str) -> Route:
        """Route a task without running it (see ``Hive.route``)."""
        route: Route = self._open_portal().call(self._hive.route, text)
        return route

    def _open_portal(self) -> BlockingPortal:
        if self._closed:
            raise UsageError("this hive is closed; open another with Hive.open_sync()")
        return self._portal

    def close(self) -> None:
        """Close the hive and stop the background loop; closing it again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._portal.call(self._stop.set)
            self._lifetime.result()
        finally:
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> SyncHive:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()
