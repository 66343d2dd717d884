"""The LLM stage: asked only when the semantic stage is unsure, constrained to the agents or none."""

import pytest

from mcphive import Hive, ModelUnavailable, Settings
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, ScriptedModel, tool_call

pytestmark = pytest.mark.anyio

VAGUE = "the numbers look weird since yesterday"


async def test_an_unsure_semantic_stage_asks_the_model_with_a_constrained_choice(settings: Settings) -> None:
    model = ScriptedModel([tool_call("route", agent="ops")])
    async with Hive.open(
        settings.model_copy(update={"llm_router": True, "llm_router_below": 0.99}), model=model
    ) as hive:
        route = await hive.route(VAGUE)
    assert (route.agent, route.stage) == ("ops", "llm")
    enum = model.requests[0].tools[0].parameters["properties"]["agent"]["enum"]
    assert enum == ["code", "docs", "test", "infra", "ops", "security", "none"]
    assert model.requests[0].tool_choice == "required"


async def test_the_model_can_say_no_agent_fits(settings: Settings) -> None:
    model = ScriptedModel([tool_call("route", agent="none")])
    async with Hive.open(
        settings.model_copy(update={"llm_router": True, "llm_router_below": 0.99}), model=model
    ) as hive:
        route = await hive.route(VAGUE)
    assert route.agent is None and route.stage == "out_of_scope" and "LLM router" in route.reason


async def test_a_confident_semantic_stage_or_a_rule_never_asks_the_model(settings: Settings) -> None:
    model = ScriptedModel([])
    async with Hive.open(
        settings.model_copy(update={"llm_router": True, "llm_router_below": 0.0}), model=model
    ) as hive:
        await hive.route("write docstrings for the pricing module")
        await hive.route("rotate the leaked credentials")
    assert model.requests == []


async def test_a_dead_model_leaves_the_decision_to_the_semantic_stage(settings: Settings) -> None:
    def down(request: ChatRequest) -> ChatResponse:
        raise ModelUnavailable("model server at http://127.0.0.1:9/v1 is not answering")

    async with Hive.open(settings.model_copy(update={"llm_router": True, "llm_router_below": 0.99}),
                         model=FunctionModel(down)) as hive:  # fmt: skip
        route = await hive.route(VAGUE)
    assert route.stage in ("semantic", "out_of_scope")
