"""MCP over streamable HTTP behind the policy: a real uvicorn server on loopback and real MCP clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Literal

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from mcphive.errors import ConfigError
from mcphive.mcp_servers.http import build_http_app, serve_http
from mcphive.mcp_servers.state import build_state_server
from mcphive.policy import PolicyConfig, RateLimit, TokenSpec

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
_ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _policy(**extra: Any) -> PolicyConfig:
    tokens = [
        {"name": "agent", "token": "agent-token", "scopes": ["state", "danger"]},
        {"name": "admin", "token": "admin-token", "scopes": ["*"], "allow_destructive": True},
        {"name": "rag-only", "token": "rag-token", "scopes": ["rag"]},
    ]
    return PolicyConfig(tokens=[TokenSpec.model_validate(t) for t in tokens], require_auth=True, **extra)


def _danger_server() -> MCPServer:
    server: MCPServer = MCPServer("danger")

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    async def wipe(namespace: str) -> str:
        """Delete every key of a namespace."""
        return f"wiped {namespace}"

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def peek(namespace: str) -> str:
        """Look at a namespace."""
        return f"looked at {namespace}"

    return server


@asynccontextmanager
async def _serving(policy: PolicyConfig, servers: Mapping[str, MCPServer] | None = None) -> AsyncIterator[str]:
    servers = servers or {"state": build_state_server(), "danger": _danger_server()}
    ready = anyio.Event()
    ports: list[int] = []

    def on_ready(port: int) -> None:
        ports.append(port)
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(serve_http, servers, policy, ready=on_ready))
        with anyio.fail_after(30):
            await ready.wait()
        yield f"http://127.0.0.1:{ports[0]}"
        tg.cancel_scope.cancel()


@asynccontextmanager
async def _client(
    url: str, token: str | None, mode: Literal["legacy", "auto"] = "auto", **headers: str
) -> AsyncIterator[Client]:
    if token:
        headers["authorization"] = f"Bearer {token}"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


def _modern_headers(tool: str, token: str | None = "agent-token", **extra: str) -> dict[str, str]:
    headers = {**_ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool, **extra}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _modern_call(tool: str, arguments: dict[str, Any], request_id: int = 7) -> dict[str, Any]:
    """A 2026-era tools/call: stateless, so every request carries its protocol envelope."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    params = {"name": tool, "arguments": arguments, "_meta": meta}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_good_token_calls_state_tools_in_both_protocol_eras(mode: Literal["legacy", "auto"]) -> None:
    async with _serving(_policy()) as base, _client(f"{base}/mcp/state", "agent-token", mode) as client:
        eras = HANDSHAKE_PROTOCOL_VERSIONS if mode == "legacy" else MODERN_PROTOCOL_VERSIONS
        assert client.protocol_version in eras
        put = await client.call_tool("state_put", {"namespace": "t", "key": "k", "value": {"x": 1}})
        assert not put.is_error
        got = await client.call_tool("state_get", {"namespace": "t", "key": "k"})
        assert got.structured_content == {"namespace": "t", "key": "k", "value": {"x": 1}, "version": 1}


async def test_the_gateway_is_also_served_at_bare_mcp_and_unknown_paths_are_404() -> None:
    servers = {"gateway": build_state_server(), "state": build_state_server()}
    async with _serving(_policy(), servers) as base:
        async with _client(f"{base}/mcp", "admin-token") as client:
            assert {t.name for t in (await client.list_tools()).tools} >= {"state_get", "state_put"}
        async with httpx2.AsyncClient() as http:
            response = await http.post(f"{base}/mcp/nope", headers={"authorization": "Bearer admin-token"})
        assert response.status_code == 404
        assert "/mcp/state" in response.json()["error"]["message"]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Token agent-token"])
async def test_a_missing_or_wrong_token_is_401_with_a_bearer_challenge(authorization: str | None) -> None:
    headers = _modern_headers("state_list", None)
    if authorization:
        headers["authorization"] = authorization
    async with _serving(_policy()) as base, httpx2.AsyncClient() as http:
        response = await http.post(f"{base}/mcp/state", headers=headers, json=_modern_call("state_list", {}))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "token" in response.json()["error"]["message"]


async def test_a_token_without_scope_for_the_server_is_403_and_the_client_sees_an_error() -> None:
    async with _serving(_policy()) as base:
        async with httpx2.AsyncClient() as http:
            response = await http.post(
                f"{base}/mcp/state",
                headers=_modern_headers("state_list", "rag-token"),
                json=_modern_call("state_list", {"namespace": "t"}),
            )
        assert response.status_code == 403
        assert "no scope for server 'state'" in response.json()["error"]["message"]
        with pytest.raises(Exception):  # noqa: B017 - the SDK surfaces an HTTP refusal in its own way; any failure
            async with _client(f"{base}/mcp/state", "rag-token", "legacy") as client:
                await client.list_tools()


async def test_a_legacy_session_cannot_be_used_with_another_token() -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": max(HANDSHAKE_PROTOCOL_VERSIONS),
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    list_tools = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    async with _serving(_policy()) as base, httpx2.AsyncClient() as http:
        opened = await http.post(
            f"{base}/mcp/state", headers={**_ACCEPT, "authorization": "Bearer agent-token"}, json=initialize
        )
        session = {"mcp-session-id": opened.headers["mcp-session-id"]}
        stolen = await http.post(
            f"{base}/mcp/state", headers={**_ACCEPT, **session, "authorization": "Bearer admin-token"}, json=list_tools
        )
    assert opened.status_code == 200
    assert stolen.status_code == 404


async def test_a_foreign_origin_is_403_and_a_loopback_one_is_served() -> None:
    async with _serving(_policy()) as base:
        async with httpx2.AsyncClient() as http:
            response = await http.post(
                f"{base}/mcp/state",
                headers=_modern_headers("state_list", origin="http://evil.example"),
                json=_modern_call("state_list", {"namespace": "t"}),
            )
        assert response.status_code == 403
        assert "allowed_origins" in response.json()["error"]["message"]
        async with _client(f"{base}/mcp/state", "agent-token", origin="http://localhost:5173") as client:
            assert not (await client.call_tool("state_list", {"namespace": "t"})).is_error


async def test_oversized_bodies_are_413_by_content_length_and_while_streaming() -> None:
    big = json.dumps(_modern_call("state_put", {"namespace": "t", "key": "k", "value": "x" * 20_000})).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    headers = _modern_headers("state_put")
    async with _serving(_policy(max_request_bytes=8192)) as base, httpx2.AsyncClient() as http:
        declared = await http.post(f"{base}/mcp/state", headers=headers, content=big)
        streamed = await http.post(f"{base}/mcp/state", headers=headers, content=chunks())
        assert streamed.request.headers.get("transfer-encoding") == "chunked"
        small_call = _modern_call("state_put", {"namespace": "t", "key": "k", "value": "x"})
        small = await http.post(f"{base}/mcp/state", headers=headers, json=small_call)
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert "max_request_bytes" in streamed.json()["error"]["message"]
    assert small.status_code == 200


async def test_a_burst_over_the_rate_limit_is_429_with_retry_after() -> None:
    policy = _policy(rate_limit=RateLimit(per_second=0.01, burst=2))
    headers = _modern_headers("state_list")
    async with _serving(policy) as base, httpx2.AsyncClient() as http:
        statuses = []
        for _ in range(3):
            response = await http.post(
                f"{base}/mcp/state", headers=headers, json=_modern_call("state_list", {"namespace": "t"})
            )
            statuses.append(response.status_code)
        admin = await http.post(
            f"{base}/mcp/state",
            headers={**headers, "authorization": "Bearer admin-token"},
            json=_modern_call("state_list", {"namespace": "t"}),
        )
    assert statuses == [200, 200, 429]
    assert int(response.headers["retry-after"]) >= 1
    assert admin.status_code == 200  # each token has its own bucket


async def test_a_token_without_allow_destructive_cannot_call_a_destructive_tool() -> None:
    async with _serving(_policy()) as base:
        async with httpx2.AsyncClient() as http:
            refused = await http.post(
                f"{base}/mcp/danger",
                headers=_modern_headers("wipe"),
                json=_modern_call("wipe", {"namespace": "t"}, request_id=41),
            )
        assert refused.status_code == 403
        assert refused.json()["id"] == 41
        assert "allow_destructive" in refused.json()["error"]["message"]
        async with _client(f"{base}/mcp/danger", "agent-token") as client:
            assert not (await client.call_tool("peek", {"namespace": "t"})).is_error
            with pytest.raises(Exception):  # noqa: B017 - the SDK surfaces an HTTP refusal in its own way
                await client.call_tool("wipe", {"namespace": "t"})
        async with _client(f"{base}/mcp/danger", "admin-token") as client:
            wiped = await client.call_tool("wipe", {"namespace": "t"})
            assert not wiped.is_error


@pytest.mark.parametrize("body", [b"{not json", b'{"method": "tools/call", "params": [', b"[1, 2"])
async def test_a_malformed_body_gets_a_clear_400_and_the_server_keeps_serving(body: bytes) -> None:
    async with _serving(_policy()) as base:
        async with httpx2.AsyncClient() as http:
            response = await http.post(f"{base}/mcp/state", headers=_modern_headers("state_list"), content=body)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32700
        async with _client(f"{base}/mcp/state", "agent-token") as client:
            assert not (await client.call_tool("state_list", {"namespace": "t"})).is_error


async def test_a_loopback_bind_without_tokens_serves_the_local_user_but_a_public_bind_needs_tokens() -> None:
    async with _serving(PolicyConfig()) as base, _client(f"{base}/mcp/state", None) as client:
        assert not (await client.call_tool("state_list", {"namespace": "t"})).is_error
    with pytest.raises(ConfigError, match="MCPHIVE_TOKENS"):
        build_http_app({"state": build_state_server()}, PolicyConfig(), bind_host="0.0.0.0")


async def test_a_destructive_tool_added_after_startup_is_refused_too() -> None:
    danger = _danger_server()
    async with _serving(_policy(), {"danger": danger}) as base:

        @danger.tool(annotations=ToolAnnotations(read_only_hint=False))  # destructive by MCP's defaults
        async def drop(namespace: str) -> str:
            """Drop a namespace."""
            return f"dropped {namespace}"

        async with httpx2.AsyncClient() as http:
            refused = await http.post(
                f"{base}/mcp/danger", headers=_modern_headers("drop"), json=_modern_call("drop", {"namespace": "t"})
            )
        assert refused.status_code == 403
        async with _client(f"{base}/mcp/danger", "admin-token") as client:
            assert not (await client.call_tool("drop", {"namespace": "t"})).is_error


@pytest.mark.parametrize("request_id", [7, "req-7"])
@pytest.mark.parametrize(
    ("token", "extra", "status"),
    [
        (None, {}, 401),
        ("wrong-token", {}, 401),
        ("rag-token", {}, 403),
        ("agent-token", {"origin": "http://evil.example"}, 403),
    ],
)
async def test_a_refused_request_gets_a_json_rpc_error_echoing_its_id(
    request_id: int | str, token: str | None, extra: dict[str, str], status: int
) -> None:
    async with _serving(_policy()) as base, httpx2.AsyncClient() as http:
        response = await http.post(
            f"{base}/mcp/state",
            headers=_modern_headers("state_list", token, **extra),
            json=_modern_call("state_list", {"namespace": "t"}, request_id=request_id),  # type: ignore[arg-type]
        )
    assert response.status_code == status
    body = response.json()
    assert (body["jsonrpc"], body["id"]) == ("2.0", request_id)
    assert body["error"]["data"]["status"] == status


async def test_a_rate_limited_request_echoes_its_id() -> None:
    policy = _policy(rate_limit=RateLimit(per_second=0.01, burst=1))
    async with _serving(policy) as base, httpx2.AsyncClient() as http:
        for request_id in (1, 2):
            response = await http.post(
                f"{base}/mcp/state",
                headers=_modern_headers("state_list"),
                json=_modern_call("state_list", {"namespace": "t"}, request_id=request_id),
            )
    assert response.status_code == 429
    assert response.json()["id"] == 2


@pytest.mark.parametrize(
    "body",
    [b"", b"{not json", b'{"jsonrpc": "2.0", "method": "notifications/initialized"}', b'[{"id": 1}]'],
)
async def test_a_refusal_with_no_request_id_to_echo_is_a_plain_http_error_never_a_null_id(body: bytes) -> None:
    async with _serving(_policy()) as base, httpx2.AsyncClient() as http:
        response = await http.post(f"{base}/mcp/state", headers=_modern_headers("state_list", None), content=body)
    assert response.status_code == 401
    assert "jsonrpc" not in response.json() and "id" not in response.json()
    assert "bearer token" in response.json()["error"]["message"]


async def test_an_oversized_refusal_and_a_malformed_body_never_carry_a_null_id() -> None:
    big = json.dumps(_modern_call("state_put", {"namespace": "t", "key": "k", "value": "x" * 20_000})).encode()
    async with _serving(_policy(max_request_bytes=8192)) as base, httpx2.AsyncClient() as http:
        too_big = await http.post(f"{base}/mcp/state", headers=_modern_headers("state_put", None), content=big)
        malformed = await http.post(
            f"{base}/mcp/state", headers=_modern_headers("state_put"), content=b'{"method": "tools/call", "params": ['
        )
    assert (too_big.status_code, malformed.status_code) == (413, 400)
    for response in (too_big, malformed):
        assert "id" not in response.json()


async def test_a_state_handle_is_bound_to_the_token_that_opened_it() -> None:
    async with _serving(_policy()) as base:
        async with _client(f"{base}/mcp/state", "agent-token") as agent:
            opened = await agent.call_tool("state_open", {"namespace": "plan:t9"})
            assert opened.structured_content is not None
            handle = opened.structured_content["handle"]
            put = await agent.call_tool("state_put", {"handle": handle, "key": "k", "value": 1})
            assert not put.is_error
        async with _client(f"{base}/mcp/state", "admin-token", "legacy") as admin:
            stolen = await admin.call_tool("state_get", {"handle": handle, "key": "k"})
            assert stolen.is_error
            assert "not valid for you; call state_open again" in stolen.content[0].text  # type: ignore[union-attr]
            by_name = await admin.call_tool("state_get", {"namespace": "plan:t9", "key": "k"})
            assert by_name.structured_content is not None and by_name.structured_content["value"] == 1
        async with _client(f"{base}/mcp/state", "agent-token", "legacy") as agent_again:
            again = await agent_again.call_tool("state_get", {"handle": handle, "key": "k"})
            assert again.structured_content is not None and again.structured_content["version"] == 1
