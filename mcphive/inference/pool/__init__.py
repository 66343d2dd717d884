"""A pool of OpenAI-compatible model servers behind one ChatModel, with routing, health checks and failover."""

from __future__ import annotations

from mcphive.inference.pool.launcher import PoolLauncher
from mcphive.inference.pool.members import CircuitBreaker, MemberFailure, MemberState
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
from mcphive.inference.pool.pool import PoolModel, pool_session

__all__ = [
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
    "SessionAffinity",
    "load_metrics",
    "make_policy",
    "parse_prometheus",
    "pool_session",
]
