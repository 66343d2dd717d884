"""Backend selection for the composition root (``hive.py`` is its only caller).

``model = "auto"`` picks, in order: Anthropic when a key is set, the pool when members are set, one
OpenAI-compatible server (vLLM, llama.cpp) when a URL is set, else the embedded local model.
"""

from __future__ import annotations

from mcphive.errors import ConfigError
from mcphive.inference.base import ChatModel
from mcphive.settings import ModelBackend, Settings

__all__ = ["build_model", "chosen_backend"]


def chosen_backend(settings: Settings) -> ModelBackend:
    """The backend ``settings`` selects, resolving ``auto``."""
    if settings.model != "auto":
        return settings.model
    if settings.anthropic_api_key:
        return "anthropic"
    if settings.pool_members:
        return "pool"
    if settings.openai_base_url:
        return "openai"
    return "local"


def build_model(settings: Settings) -> ChatModel:
    """Construct the ChatModel ``settings`` asks for (cheap: models load on first call)."""
    backend = chosen_backend(settings)
    if backend == "anthropic":
        if not settings.anthropic_api_key:
            raise ConfigError("model 'anthropic' needs an API key; set ANTHROPIC_API_KEY or anthropic_api_key")
        from mcphive.inference.anthropic import AnthropicModel

        return AnthropicModel(settings.anthropic_api_key, settings.anthropic_model)
    if backend == "pool":
        return _pool(settings)
    if backend == "openai":
        if not settings.openai_base_url:
            raise ConfigError("model 'openai' needs a server URL; set openai_base_url (e.g. http://127.0.0.1:8000/v1)")
        from mcphive.inference.openai_compat import OpenAICompatModel

        return OpenAICompatModel(
            settings.openai_base_url,
            settings.openai_model,
            api_key=settings.openai_api_key,
            timeout=settings.model_timeout_s,
        )
    return _local(settings)


def _local(settings: Settings) -> ChatModel:
    from mcphive.inference.local import LocalModel

    return LocalModel(settings.local_model_path, n_threads=settings.local_threads, n_ctx=settings.local_context)


def _pool(settings: Settings) -> ChatModel:
    if not settings.pool_members:
        raise ConfigError('model "pool" needs members; set pool_members, e.g. ["http://127.0.0.1:8000/v1"]')
    from mcphive.inference.pool import PoolModel

    fallback: ChatModel | None = None
    if settings.pool_fallback == "anthropic":
        if not settings.anthropic_api_key:
            raise ConfigError("pool_fallback 'anthropic' needs ANTHROPIC_API_KEY or anthropic_api_key")
        from mcphive.inference.anthropic import AnthropicModel

        fallback = AnthropicModel(settings.anthropic_api_key, settings.anthropic_model)
    elif settings.pool_fallback == "local":
        fallback = _local(settings)
    return PoolModel(
        settings.pool_members,
        settings.pool_model,
        policy=settings.pool_policy,
        fallback=fallback,
        fallback_price=settings.pool_fallback_price,
        api_key=settings.openai_api_key,
        timeout=settings.model_timeout_s,
        queue_timeout=settings.pool_queue_timeout_s,
        max_in_flight=settings.pool_max_in_flight,
    )
