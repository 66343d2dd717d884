"""The event bus: nothing that leaves it holds a credential, whether it is read late or followed live."""

from __future__ import annotations

import anyio
import pytest

from mcphive.router.events import EventBus
from mcphive.types import Event

pytestmark = pytest.mark.anyio

KEY = "AKIAEXAMPLEFAKEKEY00"


def _tool_call(n: int) -> dict[str, object]:
    return {"tool": "read_file", "arguments": {"path": f"config{n}.py"}, "result": f'AWS_ACCESS_KEY = "{KEY}"'}


def test_history_read_late_is_redacted_and_in_order() -> None:
    bus = EventBus()
    bus.publish("t1", "started", {"agent": "security"})
    for n in range(3):
        bus.publish("t1", "tool_call", _tool_call(n))
    bus.publish("t1", "finished", {"status": "succeeded"})

    events = bus.history("t1")

    assert [e.kind for e in events] == ["started", "tool_call", "tool_call", "tool_call", "finished"]
    assert KEY not in "".join(e.model_dump_json() for e in events)
    assert all("[REDACTED:AWS Access Key]" in e.data["result"] for e in events[1:4])
    assert [e.data["arguments"]["path"] for e in events[1:4]] == ["config0.py", "config1.py", "config2.py"]
    assert bus.history("t1") == events  # read twice, the same events (redacted once)


async def test_a_live_subscriber_gets_redacted_events() -> None:
    bus = EventBus()
    bus.publish("t1", "started", {"agent": "security"})
    seen: list[Event] = []

    async def follow() -> None:
        async for event in bus.subscribe("t1"):
            seen.append(event)

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        await anyio.wait_all_tasks_blocked()
        bus.publish("t1", "tool_call", _tool_call(0))
        bus.publish("t1", "finished", {"status": "succeeded"})

    assert [e.kind for e in seen] == ["started", "tool_call", "finished"]
    assert KEY not in seen[1].model_dump_json() and "[REDACTED:AWS Access Key]" in seen[1].data["result"]
    assert bus.history("t1") == seen
