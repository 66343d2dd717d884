"""The routing cascade with the real MiniLM embedder."""

import pytest

from mcphive.agents.spec import load_specs
from mcphive.embeddings import get_embedder
from mcphive.errors import ConfigError, UnknownAgent
from mcphive.router.cascade import RoutingCascade
from mcphive.router.semantic import SemanticRouter
from mcphive.settings import RouteRule

pytestmark = pytest.mark.anyio


def cascade(extra_rules: list[RouteRule] | None = None, threshold: float = 0.35) -> RoutingCascade:
    specs = load_specs()
    semantic = SemanticRouter({n: s.examples for n, s in specs.items()}, get_embedder())
    return RoutingCascade(
        list(specs),
        {n: s.rules for n, s in specs.items()},
        semantic,
        threshold=threshold,
        extra_rules=extra_rules or [],
    )


async def test_an_explicit_agent_wins_without_scoring() -> None:
    route = await cascade().route("anything at all", agent="ops")
    assert (route.agent, route.stage, route.confidence) == ("ops", "explicit", 1.0)


async def test_an_unknown_explicit_agent_lists_the_known_ones() -> None:
    with pytest.raises(
        UnknownAgent, match="unknown agent 'doc'; choose one of: code, docs, test, infra, ops, security"
    ):
        await cascade().route("x", agent="doc")


async def test_a_single_matching_rule_decides_and_keeps_runners_up() -> None:
    route = await cascade().route("Rotate the leaked credentials in settings.py")
    assert (route.agent, route.stage) == ("security", "rule")
    assert route.runners_up and all(c.agent != "security" for c in route.runners_up)


async def test_settings_rules_are_checked_against_known_agents() -> None:
    with pytest.raises(ConfigError, match=r"the routing rule 'x' sends tasks to unknown agent 'nobody'; choose one of"):
        cascade([RouteRule(pattern="x", agent="nobody")])


@pytest.mark.parametrize(
    ("text", "agent"),
    [
        ("the nightly job keeps timing out talking to the upstream", "ops"),
        ("write docstrings for the public functions", "docs"),
        ("AssertionError in test_apply_discount after the last change", "test"),
        ("the base image is pulled with an unpinned tag", "infra"),
        ("there is an unused import and a bare except in cache.py", "code"),
    ],
)
async def test_semantic_stage_routes_paraphrases_it_never_saw(text: str, agent: str) -> None:
    route = await cascade().route(text)
    assert route.agent == agent, route


async def test_out_of_scope_text_is_refused_instead_of_guessed() -> None:
    route = await cascade().route("what is a good recipe for banana bread")
    assert route.agent is None and route.stage == "out_of_scope"
    assert "name an agent" in route.reason


async def test_text_unlike_any_example_is_refused_even_when_an_agent_is_likeliest() -> None:
    route = await cascade(threshold=0.0).route("please book a table for two at an italian restaurant tonight")
    assert route.agent is None and route.stage == "out_of_scope"
    assert "unlike every agent's examples" in route.reason


@pytest.mark.parametrize(
    ("text", "agent"),
    [
        ("Bump actions/checkout from 3 to 4", "infra"),
        ("Upgrade certifi to 2024.2.2", "infra"),
        ("Package foo before 1.2 allows remote attackers to execute arbitrary code", "security"),
        ("docs: fix the install instructions", "docs"),
        ("cpu_usage: CPU utilization above 90% for 5 minutes", "ops"),
        ("KubePodCrashLooping: pod is restarting repeatedly", "ops"),
        ("etcdNoLeader: etcd cluster member has no leader", "ops"),
        ("Drop support for Python 3.9", "infra"),
        ("Add Node 20 to the CI matrix", "infra"),
        ("Explain how to configure the cache in the user guide", "docs"),
    ],
)
async def test_commit_and_changelog_conventions_are_routed_by_rule(text: str, agent: str) -> None:
    route = await cascade().route(text)
    assert (route.agent, route.stage) == (agent, "rule"), route


@pytest.mark.parametrize(
    "text",
    ["fetch_prices: add caching", "fetchPrices: handle an empty response", "PriceCache: Fix the eviction order"],
)
async def test_a_commit_style_scope_is_not_mistaken_for_an_alert_name(text: str) -> None:
    # "name: summary" is how alerts are written, and "scope: verb ..." how commits are; the verb tells them apart.
    route = await cascade().route(text)
    assert route.agent == "code" and route.stage == "semantic", route


async def test_a_semantic_confidence_is_a_probability_over_the_agents() -> None:
    route = await cascade().route("the nightly job keeps timing out talking to the upstream")
    assert route.stage == "semantic" and 0.35 <= route.confidence <= 1.0
    assert sum(c.score for c in route.runners_up) <= 1.0 - route.confidence + 1e-3
