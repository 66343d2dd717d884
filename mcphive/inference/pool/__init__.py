"""A pool of OpenAI-compatible model servers behind one ChatModel, with routing, health checks and failover."""

from __future__ import annotations

from mcphive.inference.pool.launcher import PoolLauncher, ServerCommand
from mcphive.inference.pool.members import Capabilities, CircuitBreaker, MemberFailure, MemberState, ToolMode
from mcphive.inference.pool.metrics import LoadMetrics, MetricsParseError, load_metrics, parse_prometheus
from mcphive.inference.pool.policies import (
    LeastLoaded,
    PrefixAware,
    RoundRobin,
    RouteKey,
    RoutingPolicy,
    SessionAffinity,
    make_policy,
)
from mcphive.inference.pool.pool import PoolModel, SpillAccount, pool_session

__all__ = [
    "Capabilities",
    "CircuitBreaker",
    "LeastLoaded",
    "LoadMetrics",
    "MemberFailure",
    "MemberState",
    "MetricsParseError",
    "PoolLauncher",
    "PoolModel",
    "PrefixAware",
    "RoundRobin",
    "RouteKey",
    "RoutingPolicy",
    "ServerCommand",
    "SessionAffinity",
    "SpillAccount",
    "ToolMode",
    "load_metrics",
    "make_policy",
    "parse_prometheus",
    "pool_session",
]
