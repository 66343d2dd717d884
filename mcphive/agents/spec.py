"""Agent specs are data: TOML files under ``agents/specs`` plus a prompt under ``agents/prompts``.

A spec names the agent, says what it does, lists example tasks (the semantic router's training
data) and high-precision regex rules, the **survey** (tool calls that always run first, giving a
useful floor whatever the model) and the **tools** the agent may use — its scoped view of the
MCP servers. External MCP servers add ``<server>.<tool>`` entries (or ``<server>.*``, every tool
of the server) to the agents their ``allow`` table names.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcphive.errors import ConfigError, UnknownAgent
from mcphive.settings import AgentConfig, ExternalServerConfig, check_regex

__all__ = ["AgentSpec", "SurveyCall", "get_spec", "load_specs", "spec_from_config", "specs_for"]


class SurveyCall(BaseModel):
    """One tool call of an agent's deterministic survey."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class AgentSpec(BaseModel):
    """Everything that defines a specialist, loaded from its TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    description: str
    prompt: str = Field(description="The instructions, read from agents/prompts/<name>.md.")
    examples: tuple[str, ...]
    rules: tuple[str, ...] = ()
    survey: tuple[SurveyCall, ...] = ()
    tools: tuple[str, ...]

    @field_validator("rules")
    @classmethod
    def _rules_compile(cls, rules: tuple[str, ...]) -> tuple[str, ...]:
        for rule in rules:
            check_regex(rule)
        return rules


def _read_spec(name: str) -> AgentSpec:
    base = resources.files("mcphive.agents")
    data = tomllib.loads((base / "specs" / f"{name}.toml").read_text(encoding="utf-8"))
    data["prompt"] = (base / "prompts" / f"{name}.md").read_text(encoding="utf-8")
    try:
        return AgentSpec(**data)
    except ValueError as e:
        raise ConfigError(f"agent spec {name!r} is invalid: {e}") from e


@cache
def load_specs() -> dict[str, AgentSpec]:
    """The built-in specialists, keyed by name, in the canonical order."""
    from mcphive.types import AGENT_NAMES

    return {name: _read_spec(name) for name in AGENT_NAMES}


def get_spec(name: str) -> AgentSpec:
    """The spec called ``name``.

    Raises:
        UnknownAgent: no spec has that name.
    """
    specs = load_specs()
    try:
        return specs[name]
    except KeyError:
        raise UnknownAgent(name, specs) from None


def spec_from_config(config: AgentConfig, known_tools: set[str]) -> AgentSpec:
    """An AgentSpec from a settings ``[[agents]]`` table.

    Raises:
        ConfigError: a tool the agent lists (or surveys) does not exist, or a rule is not a valid regex.
    """
    unknown = sorted({*config.tools, *(str(c.get("tool")) for c in config.survey)} - known_tools)
    if unknown:
        choices = ", ".join(sorted(known_tools))
        raise ConfigError(f"agent {config.name!r} names unknown tool(s) {', '.join(unknown)}; choose from: {choices}")
    try:
        return AgentSpec(
            name=config.name,
            title=f"{config.name.capitalize()} agent",
            description=config.description,
            prompt=config.instructions,
            examples=tuple(config.examples),
            rules=tuple(config.rules),
            survey=tuple(SurveyCall(**c) for c in config.survey),
            tools=tuple(config.tools),
        )
    except ValueError as e:
        raise ConfigError(f"agent {config.name!r} in settings is invalid: {e}") from e


def specs_for(
    configs: list[AgentConfig], known_tools: set[str], external: Sequence[ExternalServerConfig] = ()
) -> dict[str, AgentSpec]:
    """The built-in specs plus (or overridden by) the ones settings define, with the external tools they may use.

    Raises:
        ConfigError: an agent spec is invalid, or an external server's ``allow`` names an unknown agent.
    """
    specs = dict(load_specs())
    for config in configs:
        specs[config.name] = spec_from_config(config, known_tools)
    for server in external:
        unknown = sorted(set(server.allow) - set(specs) - {"*"})
        if unknown:
            raise ConfigError(
                f"MCP server {server.name!r} allows unknown agent(s) {', '.join(unknown)}; "
                f"choose from: *, {', '.join(specs)}"
            )
        for agent, tools in server.allow.items():
            names = [f"{server.name}.*"] if "*" in tools else [f"{server.name}.{tool}" for tool in tools]
            for target in specs if agent == "*" else [agent]:
                merged = dict.fromkeys([*specs[target].tools, *names])
                specs[target] = specs[target].model_copy(update={"tools": tuple(merged)})
    return specs
