"""Cheap checks of which model backends could answer, for ``mcphive doctor``.

Nothing here loads a model or calls a paid API: the local check looks for the package and the
file, the OpenAI-compatible check asks the server for its model list with a short timeout, and
the Anthropic check only looks at whether a key is configured.
"""

from __future__ import annotations

import importlib.util

import httpx2
from pydantic import BaseModel

from mcphive.errors import ModelUnavailable
from mcphive.inference.local import default_gguf_path
from mcphive.settings import Settings

__all__ = ["BackendStatus", "acheck_backends", "check_backends"]

_PROBE_TIMEOUT_S = 2.0
# An unparsable URL raises InvalidURL, which is not an HTTPError.
_PROBE_ERRORS = (httpx2.HTTPError, httpx2.InvalidURL)


class BackendStatus(BaseModel):
    """Whether one backend is usable, and why (or why not)."""

    name: str
    available: bool
    detail: str


def check_backends(settings: Settings) -> list[BackendStatus]:
    """The status of the local, openai and anthropic backends under ``settings``, in that order.

    Blocks for at most about two seconds (the OpenAI-compatible probe); inside an event loop use
    :func:`acheck_backends`.
    """
    probe: httpx2.Response | Exception | None = None
    if settings.openai_base_url:
        with httpx2.Client(timeout=_PROBE_TIMEOUT_S, headers=_auth(settings)) as client:
            try:
                probe = client.get(_models_url(settings))
            except _PROBE_ERRORS as e:
                probe = e
    return [_check_local(settings), _openai_status(settings, probe), _check_anthropic(settings)]


async def acheck_backends(settings: Settings) -> list[BackendStatus]:
    """Like :func:`check_backends`, without blocking the event loop."""
    probe: httpx2.Response | Exception | None = None
    if settings.openai_base_url:
        async with httpx2.AsyncClient(timeout=_PROBE_TIMEOUT_S, headers=_auth(settings)) as client:
            try:
                probe = await client.get(_models_url(settings))
            except _PROBE_ERRORS as e:
                probe = e
    return [_check_local(settings), _openai_status(settings, probe), _check_anthropic(settings)]


def _check_local(settings: Settings) -> BackendStatus:
    if importlib.util.find_spec("llama_cpp") is None:
        return BackendStatus(
            name="local", available=False, detail="llama-cpp-python is not installed; run pip install 'mcphive[local]'"
        )
    if settings.local_model_path is not None:
        path = settings.local_model_path
        if not path.is_file():
            return BackendStatus(
                name="local", available=False, detail=f"{path} does not exist; fix local_model_path or unset it"
            )
    else:
        try:
            path = default_gguf_path()
        except ModelUnavailable as e:
            return BackendStatus(name="local", available=False, detail=str(e))
    return BackendStatus(name="local", available=True, detail=f"llama.cpp with {path.name}")


def _auth(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.openai_api_key}"} if settings.openai_api_key else {}


def _models_url(settings: Settings) -> str:
    return f"{(settings.openai_base_url or '').rstrip('/')}/models"


def _openai_status(settings: Settings, probe: httpx2.Response | Exception | None) -> BackendStatus:
    url = settings.openai_base_url
    if not url or probe is None:
        return BackendStatus(name="openai", available=False, detail="not configured; set openai_base_url")
    if isinstance(probe, Exception):
        detail = f"{url} is not answering ({type(probe).__name__}); start the server or fix openai_base_url"
        return BackendStatus(name="openai", available=False, detail=detail)
    if probe.status_code >= 400:
        detail = (
            f"GET {_models_url(settings)} answered HTTP {probe.status_code}; check openai_base_url and openai_api_key"
        )
        return BackendStatus(name="openai", available=False, detail=detail)
    return BackendStatus(name="openai", available=True, detail=f"{url} answers (model {settings.openai_model!r})")


def _check_anthropic(settings: Settings) -> BackendStatus:
    if not settings.anthropic_api_key:
        return BackendStatus(
            name="anthropic", available=False, detail="no API key; set anthropic_api_key or ANTHROPIC_API_KEY"
        )
    return BackendStatus(
        name="anthropic", available=True, detail=f"key configured (not verified), model {settings.anthropic_model!r}"
    )
