"""The shared blackboard, through a real in-process MCP client."""

import pytest
from mcp import Client

from mcphive.mcp_servers.state import StateStore, build_state_server

pytestmark = pytest.mark.anyio


async def test_writes_bump_versions_and_compare_and_set_refuses_stale_writers() -> None:
    async with Client(build_state_server(StateStore())) as client:
        first = await client.call_tool("state_put", {"namespace": "t1", "key": "plan", "value": {"step": 1}})
        assert first.structured_content == {"namespace": "t1", "key": "plan", "version": 1}
        ok = await client.call_tool("state_put", {"namespace": "t1", "key": "plan", "value": 2, "expected_version": 1})
        assert not ok.is_error
        stale = await client.call_tool(
            "state_put", {"namespace": "t1", "key": "plan", "value": 3, "expected_version": 1}
        )
        assert stale.is_error
        assert "version 2, not 1" in stale.content[0].text  # type: ignore[union-attr]
        got = await client.call_tool("state_get", {"namespace": "t1", "key": "plan"})
        assert got.structured_content is not None
        assert (got.structured_content["value"], got.structured_content["version"]) == (2, 2)


async def test_namespaces_are_separate_and_keys_are_listed_sorted() -> None:
    store = StateStore()
    store.put("a", "z", 1)
    store.put("a", "b", 1)
    store.put("other", "c", 1)
    async with Client(build_state_server(store)) as client:
        listed = await client.call_tool("state_list", {"namespace": "a"})
        assert listed.structured_content == {"namespace": "a", "keys": ["b", "z"]}
        missing = await client.call_tool("state_get", {"namespace": "a", "key": "c"})
        assert missing.structured_content is not None and missing.structured_content["version"] == 0


async def test_tool_definitions_carry_titles_and_read_only_hints() -> None:
    async with Client(build_state_server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert tools["state_get"].annotations is not None and tools["state_get"].annotations.read_only_hint
    assert all(t.title for t in tools.values())
