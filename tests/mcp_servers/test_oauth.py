"""OAuth 2.1 resource-server mode over HTTP: RFC 9728 metadata, the 401 challenge, and JWT access tokens.

The keys are generated here; the tokens are signed with PyJWT as an authorization server would sign them.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcphive.errors import ConfigError
from mcphive.mcp_servers.http import serve_http
from mcphive.mcp_servers.state import build_state_server
from mcphive.policy import OAuthConfig, PolicyConfig

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.test"
RESOURCE = "https://mcp.example.test/mcp"
_ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"good": _key(), "stranger": _key()}


@pytest.fixture
def jwks(tmp_path: Path, keys: dict[str, rsa.RSAPrivateKey]) -> Path:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys["good"].public_key()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    return path


def _token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": RESOURCE, "sub": "alice", "exp": now + 300, "iat": now, "scope": "state"}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": "k1"})


@asynccontextmanager
async def _serving(jwks: Path) -> AsyncIterator[str]:
    policy = PolicyConfig(oauth=OAuthConfig(resource=RESOURCE, issuer=ISSUER, jwks_file=jwks))
    ready = anyio.Event()
    ports: list[int] = []

    def on_ready(port: int) -> None:
        ports.append(port)
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(serve_http, {"state": build_state_server()}, policy, ready=on_ready))
        with anyio.fail_after(30):
            await ready.wait()
        yield f"http://127.0.0.1:{ports[0]}"
        tg.cancel_scope.cancel()


async def test_metadata_and_the_401_challenge_point_clients_at_the_authorization_server(jwks: Path) -> None:
    async with _serving(jwks) as base, httpx2.AsyncClient() as http:
        for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
            meta = (await http.get(base + path)).json()
            assert meta["resource"] == RESOURCE and meta["authorization_servers"] == [ISSUER]
            assert "state" in meta["scopes_supported"] and meta["bearer_methods_supported"] == ["header"]
        ping = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
        refused = await http.post(f"{base}/mcp/state", json=ping, headers=_ACCEPT)
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/mcp"' in challenge
    assert refused.json()["id"] == 7


async def test_a_valid_access_token_reaches_the_servers_its_scope_names(
    jwks: Path, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    async with _serving(jwks) as base:
        headers = {"authorization": f"Bearer {_token(keys['good'])}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(f"{base}/mcp/state", http_client=http)) as client,
        ):
            put = await client.call_tool("state_put", {"namespace": "n", "key": "k", "value": 1})
        assert put.structured_content == {"namespace": "n", "key": "k", "version": 1}

        async with httpx2.AsyncClient() as http:
            other = {"authorization": f"Bearer {_token(keys['good'], scope='rag')}", **_ACCEPT}
            ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            forbidden = await http.post(f"{base}/mcp/state", json=ping, headers=other)
    assert forbidden.status_code == 403 and "no scope for server 'state'" in forbidden.text


@pytest.mark.parametrize(
    ("signer", "claims", "reason"),
    [
        ("good", {"aud": "https://elsewhere.example.test/mcp"}, "not for this server; ask for one with resource="),
        ("good", {"iss": "https://evil.example.test"}, "was not issued by https://auth.example.test"),
        ("good", {"exp": int(time.time()) - 3600}, "has expired"),
        ("good", {"exp": None}, "is not valid"),
        ("stranger", {}, "is not valid"),
    ],
)
async def test_bad_access_tokens_are_refused_with_the_reason(
    jwks: Path, keys: dict[str, rsa.RSAPrivateKey], signer: str, claims: dict[str, Any], reason: str
) -> None:
    token = _token(keys[signer], **claims)
    async with _serving(jwks) as base, httpx2.AsyncClient() as http:
        refused = await http.post(
            f"{base}/mcp/state",
            json={"jsonrpc": "2.0", "id": 3, "method": "ping"},
            headers={"authorization": f"Bearer {token}", **_ACCEPT},
        )
    assert refused.status_code == 401, refused.text
    assert reason in refused.json()["error"]["message"]
    assert "resource_metadata=" in refused.headers["www-authenticate"]


def test_oauth_settings_need_one_key_source_and_a_readable_key_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of jwks_file or jwks_url"):
        OAuthConfig(resource=RESOURCE, issuer=ISSUER)
    (tmp_path / "bad.json").write_text("{}")
    from mcphive.policy import JWTVerifier

    with pytest.raises(ConfigError, match="not a readable JWK Set"):
        JWTVerifier(OAuthConfig(resource=RESOURCE, issuer=ISSUER, jwks_file=tmp_path / "bad.json"))
    assert PolicyConfig(oauth=OAuthConfig(resource=RESOURCE, issuer=ISSUER, jwks_url="https://a/jwks")).auth_required(
        "127.0.0.1"
    )
