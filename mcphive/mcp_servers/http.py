"""Serve mcphive's MCP servers over streamable HTTP, behind :mod:`mcphive.policy`.

Each server is mounted at ``/mcp/<name>`` (the gateway also at ``/mcp``). One small ASGI layer
in front of the SDK's transports enforces, in this order: the ``Host``/``Origin`` checks, the
declared body size, the bearer token, the per-client rate limit, the token's server scope, and
for ``POST`` the streamed body size and (for tokens without ``allow_destructive``) a refusal of
``tools/call`` on destructive tools. Refusals say what to do. A refusal answers a JSON-RPC request
with a JSON-RPC error carrying that request's ``id`` (so a refused ``POST`` is read, within the size
limit, before it is answered); anything else (no body, not JSON, a notification, a batch, an
oversized body) gets a plain HTTP error body, ``{"error": {"code", "message", "data"}}`` with no
``jsonrpc``/``id``, since the 2026-07-28 schema has no null id.

With ``policy.oauth`` set the server is also an OAuth 2.1 resource server: it serves its RFC 9728
metadata at ``/.well-known/oauth-protected-resource`` (and under the resource's path), answers a 401
with ``WWW-Authenticate: Bearer ... resource_metadata="..."``, and accepts JWT access tokens whose
signature, issuer, audience (this resource) and expiry verify (:class:`~mcphive.policy.JWTVerifier`);
static tokens keep working beside them.

The admitted request's :class:`~mcphive.policy.Grant` rides in the ASGI scope under
:data:`GRANT_SCOPE_KEY`; tools read it with :func:`grant_of` (the state server binds handles to it).

Both protocol eras pass through unchanged: the SDK's session manager routes ``initialize``-era
requests to sessions and 2026-era requests to its stateless path.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import Tool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcphive._asgi import ClientGone, listening_socket, read_body
from mcphive.errors import ConfigError
from mcphive.policy import (
    Authenticator,
    Grant,
    JWTVerifier,
    PolicyConfig,
    PolicyViolation,
    RateLimited,
    RateLimiter,
    RequestTooLarge,
    Unauthenticated,
    check_host,
    check_origin,
    check_size,
)

__all__ = ["GRANT_SCOPE_KEY", "PolicyApp", "build_http_app", "grant_of", "serve_http"]

logger = logging.getLogger(__name__)

_PARSE_ERROR = -32700
_POLICY_ERROR = -32001

GRANT_SCOPE_KEY = "mcphive.grant"
"""ASGI scope key under which the policy layer passes the admitted request's Grant to the servers."""


def grant_of(request: object) -> Grant | None:
    """The :class:`~mcphive.policy.Grant` of an HTTP request admitted by :class:`PolicyApp`.

    ``request`` is what the SDK exposes as ``ctx.request_context.request`` (a Starlette request over
    HTTP, None in-process and over stdio); None when it carries no grant.
    """
    scope = getattr(request, "scope", None)
    grant = scope.get(GRANT_SCOPE_KEY) if isinstance(scope, Mapping) else None
    return grant if isinstance(grant, Grant) else None


def _is_destructive(tool: Tool) -> bool:
    # MCP's defaults: a tool is destructive unless it says it is read-only or explicitly not destructive.
    ann = tool.annotations
    if ann is None:
        return True
    if ann.read_only_hint:
        return False
    return ann.destructive_hint is not False


class _Mount:
    """One served MCP server: its session manager and what its tools are."""

    def __init__(self, name: str, server: MCPServer, policy: PolicyConfig, bind_host: str) -> None:
        self.name = name
        self.server = server
        # The policy layer does the Host/Origin checks itself (with the configured origins), so the SDK's are off.
        server.streamable_http_app(
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=policy.max_request_bytes,
            host=bind_host,
        )
        self.manager: StreamableHTTPSessionManager = server.session_manager
        self.destructive: frozenset[str] = frozenset()
        self.known: frozenset[str] = frozenset()

    async def refresh_tools(self) -> None:
        tools = await self.server.list_tools()
        self.known = frozenset(t.name for t in tools)
        self.destructive = frozenset(t.name for t in tools if _is_destructive(t))

    async def is_destructive(self, tool: str) -> bool:
        if tool not in self.known:  # a tool added after startup: learn its annotations before deciding
            await self.refresh_tools()
        return tool in self.destructive


def _error_body(status: int, message: str, request_id: Any = None) -> bytes:
    """A JSON-RPC error for ``request_id`` when it is a valid id, else a plain HTTP error body of the same shape."""
    code = _PARSE_ERROR if status == 400 else _POLICY_ERROR
    error = {"code": code, "message": message, "data": {"status": status}}
    if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
        return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode("utf-8")
    return json.dumps({"error": error}).encode("utf-8")


def _request_id(body: bytes) -> Any:
    """The id of the single JSON-RPC request in ``body``; None for anything else (not JSON, a batch, a notification)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed.get("id") if isinstance(parsed, dict) else None


async def _respond(send: Send, status: int, body: bytes, extra: Mapping[str, str] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, error: PolicyViolation, request_id: Any = None, challenge: str = "") -> None:
    extra: dict[str, str] = {}
    if isinstance(error, Unauthenticated):
        extra["www-authenticate"] = f'Bearer realm="mcphive"{challenge}'
    if isinstance(error, RateLimited):
        extra["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    await _respond(send, error.status, _error_body(error.status, str(error), request_id), extra)


class PolicyApp:
    """The ASGI app: routes ``/mcp/<name>`` to each server's transport, applying the policy first."""

    def __init__(self, servers: Mapping[str, MCPServer], policy: PolicyConfig, *, bind_host: str) -> None:
        if not servers:
            raise ConfigError("no MCP servers to serve; pass at least one, e.g. {'state': build_state_server()}")
        self.policy = policy
        self.bind_host = bind_host
        self.authenticator = Authenticator(
            policy.tokens, required=policy.auth_required(bind_host), oauth=policy.oauth is not None
        )
        self.jwt = JWTVerifier(policy.oauth) if policy.oauth is not None else None
        # RFC 9728 section 5.1: a 401 names the metadata, so a client can find the authorization server.
        self.challenge = f', resource_metadata="{policy.oauth.metadata_url}"' if policy.oauth is not None else ""
        self.limiter = RateLimiter(policy.rate_limit)
        self.mounts = {name: _Mount(name, server, policy, bind_host) for name, server in servers.items()}
        self.routes: dict[str, _Mount] = {f"/mcp/{name}": mount for name, mount in self.mounts.items()}
        if "gateway" in self.mounts:
            self.routes["/mcp"] = self.mounts["gateway"]
        # The SDK binds a legacy session to the user that opened it: another token cannot ride on its id.
        self._users = {
            t.name: AuthenticatedUser(AccessToken(token=t.name, client_id=t.name, scopes=list(t.scopes)))
            for t in policy.tokens
        }
        self.on_ready: Callable[[], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        async with AsyncExitStack() as stack:
            await receive()  # lifespan.startup
            try:
                for mount in self.mounts.values():
                    await stack.enter_async_context(mount.manager.run())
                    await mount.refresh_tools()
            except Exception as e:
                logger.exception("MCP HTTP startup failed")
                await send({"type": "lifespan.startup.failed", "message": str(e)})
                return
            await send({"type": "lifespan.startup.complete"})
            if self.on_ready is not None:
                self.on_ready()
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.policy.oauth is not None and scope["path"].startswith("/.well-known/oauth-protected-resource"):
            metadata = self.policy.oauth.metadata(sorted(self.mounts))
            await _respond(send, 200, json.dumps(metadata).encode("utf-8"), {"cache-control": "max-age=3600"})
            return
        mount = self.routes.get(scope["path"].rstrip("/") or "/")
        if mount is None:
            served = ", ".join(sorted(self.routes))
            await _respond(send, 404, _error_body(404, f"no MCP server at {scope['path']!r}; try one of: {served}"))
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            grant = await self._admit(scope, headers, mount.name)
        except PolicyViolation as e:
            await self._refuse_request(scope, receive, send, e)
            return
        scope = {**scope, GRANT_SCOPE_KEY: grant}
        if grant.token_name is not None:
            scope["user"] = self._users.get(grant.token_name) or AuthenticatedUser(
                AccessToken(token=grant.token_name, client_id=grant.token_name, scopes=sorted(grant.scopes))
            )
        if scope["method"] != "POST":
            await mount.manager.handle_request(scope, receive, send)
            return
        try:
            body = await self._read_body(receive)
        except PolicyViolation as e:
            await _refuse(send, e)
            return
        except ClientGone:
            return
        if (
            not grant.allow_destructive
            and b"tools/call" in body
            and not await self._allowed_calls(mount, grant, body, send)
        ):
            return
        await mount.manager.handle_request(scope, _replay(body, receive), send)

    async def _refuse_request(self, scope: Scope, receive: Receive, send: Send, error: PolicyViolation) -> None:
        """Refuse, echoing the request's JSON-RPC id: read the (size-limited) body first when there is one."""
        if scope["method"] != "POST" or isinstance(error, RequestTooLarge):
            await _refuse(send, error, challenge=self.challenge)
            return
        try:
            body = await self._read_body(receive)
        except PolicyViolation as e:  # the body is over the limit too: answer that, with no id to echo
            await _refuse(send, e)
            return
        except ClientGone:
            return
        await _refuse(send, error, _request_id(body), self.challenge)

    async def _authenticate(self, header: str | None) -> Grant:
        """Static tokens in constant time; with OAuth on, a JWT-shaped bearer token is verified as an access token."""
        presented = header.partition(" ")[2].strip() if header else ""
        if self.jwt is not None and header and header[:7].lower() == "bearer " and presented.count(".") == 2:
            # In a thread: the first use of a jwks_url fetches the key set.
            return await anyio.to_thread.run_sync(self.jwt.verify, presented)
        return self.authenticator.authenticate(header)

    async def _admit(self, scope: Scope, headers: dict[str, str], server: str) -> Grant:
        check_host(headers.get("host"), bind_host=self.bind_host, allowed=self.policy.allowed_hosts)
        check_origin(headers.get("origin"), allowed=self.policy.allowed_origins, bind_host=self.bind_host)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit():
            check_size(int(declared), self.policy.max_request_bytes)
        client = scope.get("client")
        address = f"addr:{client[0] if client else 'unknown'}"
        try:
            grant = await self._authenticate(headers.get("authorization"))
        except Unauthenticated:
            self.limiter.check(address)  # failed guesses spend the address's budget too
            raise
        self.limiter.check(f"token:{grant.token_name}" if grant.token_name else address)
        grant.require_server(server)
        return grant

    async def _read_body(self, receive: Receive) -> bytes:
        return await read_body(receive, self.policy.max_request_bytes)

    async def _allowed_calls(self, mount: _Mount, grant: Grant, body: bytes, send: Send) -> bool:
        """False (after answering) when the body is malformed or calls a destructive tool."""
        try:
            parsed = json.loads(body)
        except ValueError:
            msg = "request body is not valid JSON; send one JSON-RPC message per POST"
            await _respond(send, 400, _error_body(400, msg))
            return False
        for message in parsed if isinstance(parsed, list) else [parsed]:
            if not isinstance(message, dict) or message.get("method") != "tools/call":
                continue
            params = message.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            if isinstance(name, str) and await mount.is_destructive(name):
                try:
                    grant.require_destructive(name)
                except PolicyViolation as e:
                    await _refuse(send, e, message.get("id"))
                    return False
        return True


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def build_http_app(servers: Mapping[str, MCPServer], policy: PolicyConfig, *, bind_host: str) -> ASGIApp:
    """An ASGI app serving ``servers`` at ``/mcp/<name>`` behind ``policy``.

    The app owns its servers' session managers: serve it once (the SDK cannot restart them).

    Raises:
        ConfigError: no servers, or auth is required (a non-loopback bind) but no tokens are configured.
    """
    return PolicyApp(servers, policy, bind_host=bind_host)


async def serve_http(
    servers: Mapping[str, MCPServer],
    policy: PolicyConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``servers`` over streamable HTTP on ``host:port`` until cancelled (or interrupted).

    ``port=0`` picks a free port; ``ready`` is called with the actual port once requests are served.
    """
    import uvicorn

    app = PolicyApp(servers, policy, bind_host=host)
    sock = listening_socket(host, port)
    actual_port: int = sock.getsockname()[1]
    if ready is not None:
        app.on_ready = lambda: ready(actual_port)
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    logger.info("serving MCP over HTTP", extra={"host": host, "port": actual_port, "servers": sorted(servers)})
    try:
        async with anyio.create_task_group() as tg:

            async def run_server() -> None:
                # Shielded so that cancelling serve_http shuts uvicorn down gracefully instead of tearing it mid-flight.
                with anyio.CancelScope(shield=True):
                    await server.serve(sockets=[sock])
                tg.cancel_scope.cancel()

            tg.start_soon(run_server)
            try:
                await anyio.sleep_forever()
            finally:
                server.should_exit = True
    finally:
        sock.close()
