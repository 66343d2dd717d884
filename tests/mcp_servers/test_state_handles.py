"""Blackboard handles and the change feed, through real in-process MCP clients."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from mcphive.mcp_servers.state import StateStore, build_state_server
from mcphive.types import Principal

pytestmark = pytest.mark.anyio

ALICE = Principal(user="alice")
BOB = Principal(user="bob")


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


async def _error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return result.content[0].text  # type: ignore[union-attr]


async def test_a_handle_addresses_the_namespace_it_was_opened_for() -> None:
    store = StateStore()
    async with Client(build_state_server(store, principal=ALICE)) as client:
        opened = await _call(client, "state_open", {"namespace": "plan:t1"})
        assert opened["namespace"] == "plan:t1" and opened["expires_in_s"] == 3600.0
        handle = opened["handle"]
        put = await _call(client, "state_put", {"handle": handle, "key": "step", "value": [1, 2]})
        assert put == {"namespace": "plan:t1", "key": "step", "version": 1}
        by_name = await _call(client, "state_get", {"namespace": "plan:t1", "key": "step"})
        assert by_name["value"] == [1, 2]
        assert (await _call(client, "state_list", {"handle": handle}))["keys"] == ["step"]
        other = await _call(client, "state_open", {"namespace": "plan:t1"})
        assert other["handle"] != handle  # minted at random, never derived from the namespace


async def test_a_handle_opened_by_another_principal_is_refused() -> None:
    store = StateStore()
    async with (
        Client(build_state_server(store, principal=ALICE)) as alice,
        Client(build_state_server(store, principal=BOB)) as bob,
    ):
        handle = (await _call(alice, "state_open", {"namespace": "secret"}))["handle"]
        await _call(alice, "state_put", {"handle": handle, "key": "k", "value": 1})
        message = await _error(bob, "state_get", {"handle": handle, "key": "k"})
    assert "is not valid for you; call state_open again" in message


async def test_an_expired_or_unknown_handle_is_refused_with_the_same_advice() -> None:
    now = [1000.0]
    store = StateStore(handle_ttl=60, clock=lambda: now[0])
    async with Client(build_state_server(store)) as client:
        handle = (await _call(client, "state_open", {"namespace": "n"}))["handle"]
        await _call(client, "state_put", {"handle": handle, "key": "k", "value": 1})
        now[0] += 61
        expired = await _error(client, "state_put", {"handle": handle, "key": "k", "value": 2})
        unknown = await _error(client, "state_list", {"handle": "made-up"})
    assert "call state_open again" in expired and "call state_open again" in unknown
    assert store.get("n", "k")["value"] == 1


@pytest.mark.parametrize("arguments", [{}, {"namespace": "n", "handle": "h"}])
async def test_exactly_one_of_namespace_or_handle_is_required(arguments: dict[str, Any]) -> None:
    async with Client(build_state_server()) as client:
        message = await _error(client, "state_list", arguments)
    assert "exactly one of namespace or handle" in message


async def test_watch_returns_the_keys_changed_since_a_namespace_version() -> None:
    store = StateStore()
    store.put("n", "a", 1)
    store.put("n", "b", 1)
    store.put("n", "a", 2)
    store.put("elsewhere", "x", 1)
    async with Client(build_state_server(store)) as client:
        since_one = await _call(client, "state_watch", {"namespace": "n", "since_version": 1})
        quiet = await _call(client, "state_watch", {"namespace": "n", "since_version": 3, "wait_seconds": 0})
    assert since_one == {
        "namespace": "n",
        "version": 3,
        "changes": [{"key": "a", "value": 2, "version": 2}, {"key": "b", "value": 1, "version": 1}],
    }
    assert quiet == {"namespace": "n", "version": 3, "changes": []}


async def test_a_waiting_watch_wakes_on_the_next_write_through_a_handle() -> None:
    store = StateStore()
    results: list[dict[str, Any]] = []
    async with Client(build_state_server(store, principal=ALICE)) as client:
        handle = (await _call(client, "state_open", {"namespace": "plan:t2"}))["handle"]

        async def watch() -> None:
            args = {"handle": handle, "since_version": 0, "wait_seconds": 30}
            results.append(await _call(client, "state_watch", args))

        with anyio.fail_after(20):  # far below wait_seconds: only the write can end the watch in time
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await _call(client, "state_put", {"handle": handle, "key": "done", "value": True})
    assert results == [
        {"namespace": "plan:t2", "version": 1, "changes": [{"key": "done", "value": True, "version": 1}]}
    ]


async def test_a_store_watch_waits_for_a_write_in_its_namespace_only() -> None:
    store = StateStore()
    async with anyio.create_task_group() as tg:
        results: list[dict[str, Any]] = []

        async def watch() -> None:
            results.append(await store.watch("n", 0, 30))

        tg.start_soon(watch)
        await anyio.wait_all_tasks_blocked()
        store.put("other", "k", 1)  # another namespace: the watcher keeps waiting
        await anyio.wait_all_tasks_blocked()
        assert results == []
        store.put("n", "k", 1)
    assert results[0]["changes"] == [{"key": "k", "value": 1, "version": 1}]
