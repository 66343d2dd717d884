"""Backend selection from Settings: the composition root's one decision about models."""

import pytest

from mcphive._backends import build_model, chosen_backend
from mcphive.errors import ConfigError
from mcphive.settings import Settings


def test_auto_prefers_anthropic_then_the_pool_then_one_server_then_local() -> None:
    assert chosen_backend(Settings(anthropic_api_key="k", pool_members=["http://127.0.0.1:1/v1"])) == "anthropic"
    assert chosen_backend(Settings(pool_members=["http://127.0.0.1:1/v1"], openai_base_url="http://x/v1")) == "pool"
    assert chosen_backend(Settings(openai_base_url="http://127.0.0.1:1/v1")) == "openai"
    assert chosen_backend(Settings()) == "local"


def test_the_pool_is_built_with_its_policy_and_members() -> None:
    model = build_model(
        Settings(pool_members=["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"], pool_policy="least_loaded")
    )
    assert type(model).__name__ == "PoolModel"


def test_the_fallback_price_from_settings_prices_spilled_tokens() -> None:
    from mcphive.inference.pool import PoolModel
    from mcphive.types import Usage

    model = build_model(
        Settings(
            model="pool",
            pool_members=["http://127.0.0.1:1/v1"],
            pool_fallback="anthropic",
            anthropic_api_key="k",
            pool_fallback_price=(3.0, 15.0),
        )
    )
    assert isinstance(model, PoolModel)
    model.spill.add(Usage(input_tokens=1_000_000, output_tokens=100_000, model_calls=1))
    assert model.spill.cost_usd == pytest.approx(3.0 + 1.5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(model="pool"), "needs members; set pool_members"),
        (
            Settings(pool_members=["http://127.0.0.1:1/v1"], pool_fallback="anthropic"),
            "pool_fallback 'anthropic' needs",
        ),
        (Settings(model="openai"), "needs a server URL"),
    ],
)
def test_a_backend_missing_what_it_needs_is_a_config_error(settings: Settings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(settings)
