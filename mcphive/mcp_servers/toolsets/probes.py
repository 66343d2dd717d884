"""Ops tool: probe an HTTP health endpoint, only on hosts an operator allowed.

An agent that can make arbitrary HTTP requests is a server-side request forgery waiting to
happen (cloud metadata endpoints, internal admin pages), so a probe goes only to loopback
addresses or to hosts listed in :data:`ALLOWED_HOSTS_ENV` (comma-separated). Redirects are not
followed (a redirect could leave the allowlist) and proxy settings are ignored (the probe must
measure the service, not the proxy).
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.policy import is_loopback_host
from mcphive.types import Finding

__all__ = ["ALLOWED_HOSTS_ENV", "TOOLS", "allowed_probe_hosts", "http_probe"]

ALLOWED_HOSTS_ENV = "MCPHIVE_PROBE_HOSTS"
"""Environment variable: extra host names (besides loopback) that ``http_probe`` may reach."""

MAX_TIMEOUT = 30.0
_BODY_PREVIEW = 300


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def allowed_probe_hosts(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The non-loopback hosts an operator allowed, lower-cased, from :data:`ALLOWED_HOSTS_ENV`."""
    raw = (environ if environ is not None else os.environ).get(ALLOWED_HOSTS_ENV, "")
    return frozenset(host.strip().lower() for host in raw.split(",") if host.strip())


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"{url!r} is not an http(s) URL with a host; give e.g. http://127.0.0.1:8080/healthz")
    host = parts.hostname.lower()
    if not is_loopback_host(host) and host not in allowed_probe_hosts():
        raise ToolError(
            f"host {host!r} is not allowed: http_probe reaches only loopback hosts and those an operator lists "
            f"in {ALLOWED_HOSTS_ENV} (comma-separated)"
        )
    return host


def _finding(url: str, status: int | None, message: str) -> dict[str, Any]:
    server_side = status is None or status >= 500
    rule = "probe-failed" if status is None else f"http-{status}"
    return Finding(
        file=url,
        rule=rule,
        severity="high" if server_side else "medium",
        message=message,
        fix="check the service's logs (log_summary) and metrics (metrics_check) around this time",
        tool="http_probe",
    ).model_dump()


def http_probe(jail: Jail, url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET ``url`` (loopback or allowlisted hosts only) and report status, latency and a finding unless 2xx."""
    _check_url(url)
    timeout = min(max(timeout, 0.1), MAX_TIMEOUT)
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "mcphive-http-probe"})
    started = time.perf_counter()
    status: int | None
    # The scheme and host were checked above; redirects and proxies are disabled in _OPENER.
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, body = response.status, response.read(_BODY_PREVIEW)
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read(_BODY_PREVIEW) if e.fp else b""
    except (TimeoutError, urllib.error.URLError, OSError) as e:
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        reason = getattr(e, "reason", e)
        message = f"GET {url} failed after {latency_ms} ms: {reason}"
        return {
            "url": url,
            "status": None,
            "latency_ms": latency_ms,
            "findings": [_finding(url, None, message)],
            "summary": message,
        }
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    summary = f"GET {url} -> {status} in {latency_ms} ms"
    findings = [] if 200 <= status < 300 else [_finding(url, status, summary)]
    return {
        "url": url,
        "status": status,
        "latency_ms": latency_ms,
        "body_preview": body.decode("utf-8", errors="replace"),
        "findings": findings,
        "summary": summary,
    }


TOOLS = [
    ToolDef(
        "http_probe",
        http_probe,
        "GET a health endpoint on a loopback or allowlisted host: status, latency, a finding unless 2xx.",
    )
]
