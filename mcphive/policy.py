"""mcphive's one policy module: who may call what, from where, how big and how often.

Everything here is pure and synchronous so that the HTTP layer can apply it per request at a
cost of microseconds, and so that it can be tested without a server:

- bearer tokens with scopes (:class:`TokenSpec`, :class:`Authenticator`, :class:`Grant`);
- ``Origin`` and ``Host`` checks against DNS rebinding (:func:`check_origin`, :func:`check_host`);
- request-size and rate limits (:func:`check_size`, :class:`RateLimiter`, a token bucket per client);
- tool-definition pins that catch a server changing a tool after it was approved
  (:func:`tool_fingerprint`, :class:`PinStore`).

Each refusal is a :class:`PolicyViolation` carrying the HTTP status it maps to, so the transport
layer never decides policy itself.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mcphive.errors import ConfigError, UsageError
from mcphive.types import Principal

__all__ = [
    "TOKENS_ENV",
    "Authenticator",
    "Forbidden",
    "Grant",
    "JWTVerifier",
    "OAuthConfig",
    "PinReview",
    "PinStore",
    "PolicyConfig",
    "PolicyViolation",
    "RateLimit",
    "RateLimited",
    "RateLimiter",
    "RequestTooLarge",
    "TokenSpec",
    "ToolDefinitionChanged",
    "Unauthenticated",
    "check_host",
    "check_origin",
    "check_size",
    "is_loopback_host",
    "parse_tokens",
    "tool_fingerprint",
]

TOKENS_ENV = "MCPHIVE_TOKENS"
"""Environment variable holding extra tokens: a JSON list of TokenSpec objects, or ``name:token:scopes`` entries."""


class PolicyViolation(UsageError):
    """A request the policy refuses; ``status`` is the HTTP status it maps to."""

    status: int = 403


class Unauthenticated(PolicyViolation):
    """No bearer token, or one that matches no configured token."""

    status = 401


class Forbidden(PolicyViolation):
    """A known caller asked for something outside its grant, or from a foreign origin."""

    status = 403


class RequestTooLarge(PolicyViolation):
    """The request body is over the configured limit."""

    status = 413


class RateLimited(PolicyViolation):
    """The client has spent its burst; ``retry_after`` says how many seconds until it may retry."""

    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ToolDefinitionChanged(UsageError):
    """A pinned tool's definition differs from the one that was approved."""


def _sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenSpec(BaseModel):
    """One bearer token and what it may do.

    Give either ``token`` (hashed on load; the plain token is never kept) or ``token_sha256``.
    ``scopes`` lists the servers the token reaches (``"*"`` for all of them).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: tuple[str, ...] = ("*",)
    allow_destructive: bool = False
    tenant: str = "default"
    user: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _hash_plain_token(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "token" in data:
            data = dict(data)
            plain = data.pop("token")
            if not isinstance(plain, str) or not plain:
                raise ValueError("token must be a non-empty string")
            if "token_sha256" in data:
                raise ValueError("give token or token_sha256, not both")
            data["token_sha256"] = _sha256_hex(plain)
        return data

    @property
    def principal(self) -> Principal:
        """The identity requests with this token act as (user defaults to the token's name)."""
        return Principal(tenant=self.tenant, user=self.user or self.name)


class RateLimit(BaseModel):
    """A token bucket: ``burst`` requests at once, refilled at ``per_second``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float = Field(20.0, gt=0)
    burst: int = Field(40, ge=1)


class OAuthConfig(BaseModel):
    """OAuth 2.1 resource-server mode: accept JWT access tokens an authorization server issued for this server.

    A token is accepted when its signature verifies against the issuer's JWKS (``jwks_file`` or ``jwks_url``),
    its ``iss`` is ``issuer``, its ``aud`` names ``resource`` and it has not expired (``exp`` is required).
    Its ``scope`` claim (space-separated) grants servers by name (``*`` for all) and ``destructive`` lets it
    call destructive tools; ``sub`` is the user it acts as.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource: str = Field(description="This server's canonical URL, e.g. https://mcp.example.com/mcp (the audience).")
    issuer: str = Field(description="The authorization server's issuer identifier.")
    jwks_file: Path | None = Field(None, description="A JSON Web Key Set file with the issuer's public keys.")
    jwks_url: str | None = Field(None, description="The issuer's JWKS URL (fetched, then cached).")
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway_s: float = Field(30.0, ge=0, description="Clock skew allowed on exp/nbf/iat.")

    @model_validator(mode="after")
    def _one_key_source(self) -> OAuthConfig:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("oauth needs exactly one of jwks_file or jwks_url")
        if not self.resource.startswith(("https://", "http://")):
            raise ValueError(f"oauth.resource must be this server's URL, not {self.resource!r}")
        return self

    @property
    def metadata_url(self) -> str:
        """Where RFC 9728 puts this resource's metadata: the well-known path inserted before the resource's path."""
        parts = urlsplit(self.resource)
        return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path.rstrip('/')}"

    def metadata(self, scopes: Iterable[str]) -> dict[str, Any]:
        """The RFC 9728 protected-resource metadata document."""
        return {
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["*", "destructive", *scopes],
            "resource_name": "mcphive",
        }


class JWTVerifier:
    """Verifies OAuth access tokens (JWTs) for :class:`OAuthConfig` with PyJWT; ``verify`` may block on a JWKS fetch."""

    def __init__(self, config: OAuthConfig) -> None:
        import jwt

        self.config = config
        self._client: jwt.PyJWKClient | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        if config.jwks_url is not None:
            self._client = jwt.PyJWKClient(config.jwks_url, cache_keys=True, timeout=10)
        else:
            assert config.jwks_file is not None
            try:
                keys = jwt.PyJWKSet.from_json(config.jwks_file.read_text("utf-8")).keys
            except (OSError, jwt.PyJWTError, ValueError) as e:
                raise ConfigError(f"oauth.jwks_file {config.jwks_file} is not a readable JWK Set ({e})") from e
            self._keys = {key.key_id: key for key in keys}

    def _key(self, token: str) -> Any:
        import jwt

        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        kid = jwt.get_unverified_header(token).get("kid")
        key = self._keys.get(kid) or (next(iter(self._keys.values())) if kid is None and len(self._keys) == 1 else None)
        if key is None:
            raise jwt.InvalidKeyError(f"no key with kid {kid!r} in the issuer's key set")
        return key.key

    def verify(self, token: str) -> Grant:
        """The grant of a valid access token.

        Raises:
            Unauthenticated: the token is malformed, expired, signed by an unknown key, or for another issuer
                or audience; the message says which.
        """
        import jwt

        c = self.config
        try:
            claims = jwt.decode(
                token, self._key(token), algorithms=list(c.algorithms), audience=c.resource, issuer=c.issuer,
                leeway=c.leeway_s, options={"require": ["exp", "iss", "aud", "sub"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError as e:
            raise Unauthenticated(f"the access token has expired; get a new one from {c.issuer}") from e
        except jwt.InvalidAudienceError as e:
            raise Unauthenticated(
                f"the access token is not for this server; ask for one with resource={c.resource}"
            ) from e
        except jwt.InvalidIssuerError as e:
            raise Unauthenticated(f"the access token was not issued by {c.issuer}") from e
        except jwt.PyJWTError as e:
            raise Unauthenticated(f"the access token is not valid ({e}); get a new one from {c.issuer}") from e
        scope = claims.get("scope", "")
        scopes = set(scope.split() if isinstance(scope, str) else map(str, scope))
        sub = str(claims["sub"])
        return Grant(f"oauth:{sub}", Principal(user=sub), frozenset(scopes - {"destructive"}), "destructive" in scopes)


class PolicyConfig(BaseModel):
    """Every policy knob of mcphive's network-facing servers (``Settings.policy``)."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[TokenSpec] = Field(default_factory=list)
    allowed_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed besides loopback ones, e.g. https://app.example"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Host names accepted on a loopback bind besides loopback (behind a proxy)."
    )
    max_request_bytes: int = Field(1024 * 1024, ge=1024)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    require_auth: bool | None = Field(
        None, description="None: required once any token is configured, and always off loopback."
    )
    oauth: OAuthConfig | None = Field(None, description="Also accept OAuth 2.1 JWT access tokens (resource server).")

    def auth_required(self, bind_host: str) -> bool:
        """Whether requests must carry a token when the server binds to ``bind_host``."""
        if self.oauth is not None:
            return True
        if self.require_auth is not None:
            return self.require_auth
        # Configured tokens are always enforced: a user who set them expects them to matter, loopback or not.
        return bool(self.tokens) or not is_loopback_host(bind_host)

    def with_env_tokens(self, environ: Mapping[str, str] | None = None) -> PolicyConfig:
        """A copy with the tokens of ``$MCPHIVE_TOKENS`` appended (see :func:`parse_tokens`)."""
        raw = (os.environ if environ is None else environ).get(TOKENS_ENV, "")
        if not raw.strip():
            return self
        return self.model_copy(update={"tokens": [*self.tokens, *parse_tokens(raw)]})


def parse_tokens(raw: str) -> list[TokenSpec]:
    """Parse ``$MCPHIVE_TOKENS``.

    Either a JSON list of :class:`TokenSpec` objects, or ``;``-separated entries
    ``name:token[:scope,scope...[:destructive]]``, e.g. ``ci:s3cret:state,rag;admin:t0p:*:destructive``.

    Raises:
        ConfigError: the value is malformed; the message names the bad entry.
    """
    raw = raw.strip()
    try:
        if raw.startswith("["):
            return [TokenSpec.model_validate(item) for item in json.loads(raw)]
        return [_parse_token_entry(entry.strip()) for entry in raw.split(";") if entry.strip()]
    except (ValueError, ValidationError, TypeError) as e:
        raise ConfigError(
            f"{TOKENS_ENV} is malformed ({e}); use name:token:scope1,scope2[:destructive] entries separated by ';' "
            "or a JSON list of {name, token, scopes, allow_destructive} objects"
        ) from e


def _parse_token_entry(entry: str) -> TokenSpec:
    parts = entry.split(":")
    if len(parts) < 2 or len(parts) > 4 or parts[3:] not in ([], ["destructive"]):
        raise ValueError(f"entry {parts[0]!r} is not name:token[:scopes[:destructive]]")
    scopes = tuple(s.strip() for s in parts[2].split(",") if s.strip()) if len(parts) > 2 else ("*",)
    return TokenSpec.model_validate(
        {"name": parts[0], "token": parts[1], "scopes": scopes or ("*",), "allow_destructive": len(parts) == 4}
    )


@dataclass(frozen=True)
class Grant:
    """What an authenticated (or anonymous loopback) caller may do."""

    token_name: str | None
    principal: Principal
    scopes: frozenset[str]
    allow_destructive: bool

    def can_reach(self, server: str) -> bool:
        """Whether this grant covers the server named ``server``."""
        return "*" in self.scopes or server in self.scopes

    def require_server(self, server: str) -> None:
        """Raise :class:`Forbidden` unless the grant covers ``server``."""
        if not self.can_reach(server):
            raise Forbidden(
                f"token {self.token_name!r} has no scope for server {server!r} (it reaches: "
                f"{', '.join(sorted(self.scopes)) or 'nothing'}); add {server!r} to its scopes"
            )

    def require_destructive(self, tool: str) -> None:
        """Raise :class:`Forbidden` unless the grant may call destructive tools."""
        if not self.allow_destructive:
            raise Forbidden(
                f"tool {tool!r} is destructive and token {self.token_name!r} may not call destructive tools; "
                "use a token with allow_destructive = true"
            )


ANONYMOUS = Grant(None, Principal(), frozenset({"*"}), allow_destructive=True)


class Authenticator:
    """Checks ``Authorization: Bearer ...`` headers against the configured tokens in constant time."""

    def __init__(self, tokens: Iterable[TokenSpec], *, required: bool, oauth: bool = False) -> None:
        self._tokens = [(bytes.fromhex(t.token_sha256), t) for t in tokens]
        self.required = required
        if required and not self._tokens and not oauth:
            raise ConfigError(
                f"authentication is required but no tokens are configured; set {TOKENS_ENV}='name:token:scopes' "
                "or policy.tokens in mcphive.toml (or bind to 127.0.0.1)"
            )

    def authenticate(self, header_value: str | None) -> Grant:
        """The grant for an ``Authorization`` header value (None when absent).

        Without a header and with auth not required, the caller is the local anonymous user.

        Raises:
            Unauthenticated: the header is missing (when required), malformed or names no known token.
        """
        if not header_value:
            if self.required:
                raise Unauthenticated("this server needs a bearer token; send 'Authorization: Bearer <token>'")
            return ANONYMOUS
        scheme, _, presented = header_value.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        digest = hashlib.sha256(presented.strip().encode("utf-8")).digest()
        match: TokenSpec | None = None
        # Compare against every token, without breaking early, so timing does not reveal which one matched.
        for expected, spec in self._tokens:
            if hmac.compare_digest(digest, expected):
                match = spec
        if match is None:
            raise Unauthenticated("the bearer token matches no configured token; check it or ask for a new one")
        return Grant(match.name, match.principal, frozenset(match.scopes), match.allow_destructive)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a bind address or a hostname, without port) is a loopback one."""
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        # Parsed, never prefix-matched: "127.0.0.1.evil.example" is a name an attacker can point anywhere.
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(authority: str) -> str:
    if authority.startswith("["):
        return authority[: authority.find("]") + 1]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def check_origin(origin: str | None, *, allowed: Iterable[str], bind_host: str) -> None:
    """Refuse browser requests from foreign origins (DNS-rebinding protection).

    No ``Origin`` (a non-browser client) passes; so does an origin listed in ``allowed`` and,
    when the server binds to loopback, any loopback origin.

    Raises:
        Forbidden: the origin is not allowed.
    """
    if not origin:
        return
    normalized = origin.rstrip("/").lower()
    if normalized in {o.rstrip("/").lower() for o in allowed}:
        return
    if is_loopback_host(bind_host):
        parts = urlsplit(normalized)
        if parts.scheme in ("http", "https") and is_loopback_host(_host_of(parts.netloc)):
            return
    raise Forbidden(f"origin {origin!r} is not allowed; add it to policy.allowed_origins if it is yours")


def check_host(host_header: str | None, *, bind_host: str, allowed: Iterable[str] = ()) -> None:
    """On a loopback bind, refuse a ``Host`` that is neither loopback nor in ``allowed`` (a rebinding attempt).

    Raises:
        Forbidden: the Host header names another machine.
    """
    if not is_loopback_host(bind_host):
        return
    host = _host_of(host_header.lower()) if host_header else ""
    if not is_loopback_host(host) and host not in {a.lower() for a in allowed}:
        raise Forbidden(
            f"host {host_header!r} is not a loopback name; connect to 127.0.0.1 or localhost "
            "(or, behind a proxy, add it to policy.allowed_hosts)"
        )


def check_size(size: int, limit: int) -> None:
    """Raise :class:`RequestTooLarge` when ``size`` bytes exceed ``limit``."""
    if size > limit:
        raise RequestTooLarge(f"request body is over {limit} bytes; send less (or raise policy.max_request_bytes)")


class RateLimiter:
    """A token bucket per client key, O(1) per check; the least recently seen keys are forgotten."""

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000):
        self._rate = limit.per_second
        self._burst = float(limit.burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, key: str) -> None:
        """Spend one token from ``key``'s bucket.

        Raises:
            RateLimited: the bucket is empty; ``retry_after`` is when the next token arrives.
        """
        now = self._clock()
        tokens, last = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            retry = (1.0 - tokens) / self._rate
            raise RateLimited(f"too many requests from {key!r}; retry in {math.ceil(retry)} s", retry)
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


def tool_fingerprint(tool: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a tool's name, description, input schema and annotations.

    Accepts the wire shape (``inputSchema``) or the SDK's snake_case dump (``input_schema``).
    """
    canonical = {
        "name": tool.get("name"),
        "description": tool.get("description"),
        "input_schema": tool.get("inputSchema", tool.get("input_schema")),
        "annotations": tool.get("annotations"),
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


PinStatus = Literal["approved", "new"]


@dataclass(frozen=True)
class PinReview:
    """How a server's current tools compare with what was approved (see :meth:`PinStore.review`)."""

    server: str
    approved: bool
    """Whether the server was ever approved (an unapproved server's tools are not offered at all)."""
    unchanged: tuple[str, ...]
    changed: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def clean(self) -> bool:
        """The server is approved and every current tool matches its pin."""
        return self.approved and not (self.changed or self.added)


class PinStore:
    """Approved tool fingerprints, per server, in a small JSON file.

    The pin file maps ``{server: {tool: sha256}}`` (the shape ``mcp_tool_audit`` reads); the approved
    definitions themselves are kept beside it in ``<name>.definitions.json`` so a later approval can show
    what changed. Reads are cached on the file's mtime and size, so checking pins per task costs a ``stat``.
    The files are read and written synchronously (they are tiny); from async code call them through
    ``anyio.to_thread.run_sync`` if they may sit on a slow disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[tuple[int, int], dict[str, dict[str, str]]] | None = None

    @property
    def definitions_path(self) -> Path:
        """The file beside the pins holding the approved definitions."""
        return self.path.with_name(f"{self.path.stem}.definitions.json")

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"tool pin file {path} is unreadable ({e}); fix or delete it and approve again") from e
        if not isinstance(data, dict):
            raise ConfigError(f"tool pin file {path} is not a JSON object; delete it and approve again")
        return data

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_mtime_ns, stat.st_size)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._read(self.path))
        return self._cache[1]

    def _write(self, path: Path, data: Mapping[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
        tmp.replace(path)

    def pins(self, server: str) -> dict[str, str] | None:
        """``{tool: sha256}`` approved for ``server``; None when the server was never approved."""
        pinned = self._load().get(server)
        return dict(pinned) if isinstance(pinned, dict) else None

    def definitions(self, server: str) -> dict[str, Any]:
        """The approved definitions of ``server``'s tools, by name (empty when none were recorded)."""
        recorded = self._read(self.definitions_path).get(server)
        return dict(recorded) if isinstance(recorded, dict) else {}

    def approve(self, server: str, tools: Iterable[Mapping[str, Any]]) -> None:
        """Pin the current definitions of ``tools`` on ``server`` (replacing that server's pins)."""
        tools = list(tools)
        definitions = self._read(self.definitions_path)
        definitions[server] = {str(t["name"]): dict(t) for t in tools}
        self._write(self.definitions_path, definitions)
        pins = dict(self._load())
        pins[server] = {str(t["name"]): tool_fingerprint(t) for t in tools}
        self._write(self.path, pins)
        self._cache = None

    def review(self, server: str, tools: Iterable[Mapping[str, Any]]) -> PinReview:
        """Compare ``tools`` (a server's current definitions) with its pins."""
        pinned = self.pins(server)
        current = {str(t["name"]): tool_fingerprint(t) for t in tools}
        known = pinned or {}
        return PinReview(
            server=server,
            approved=pinned is not None,
            unchanged=tuple(sorted(n for n, sha in current.items() if known.get(n) == sha)),
            changed=tuple(sorted(n for n, sha in current.items() if n in known and known[n] != sha)),
            added=tuple(sorted(n for n in current if n not in known)),
            removed=tuple(sorted(n for n in known if n not in current)),
        )

    def check(self, server: str, tool: Mapping[str, Any]) -> PinStatus:
        """``"approved"`` when ``tool`` matches its pin, ``"new"`` when it has none.

        Raises:
            ToolDefinitionChanged: the tool's definition differs from the approved one.
        """
        pinned = (self.pins(server) or {}).get(str(tool.get("name")))
        if pinned is None:
            return "new"
        if not hmac.compare_digest(pinned, tool_fingerprint(tool)):
            raise ToolDefinitionChanged(
                f"tool {tool.get('name')!r} on server {server!r} changed since it was approved (a rug pull?) "
                f"— review it with `mcphive mcp approve {server} --dry-run`, then run `mcphive mcp approve {server}`"
            )
        return "approved"
