"""Routing policies on member states (no servers needed: a policy only reads the pool's bookkeeping)."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from mcphive.errors import ConfigError
from mcphive.inference.base import ChatMessage
from mcphive.inference.pool import (
    LeastLoaded,
    LoadMetrics,
    MemberState,
    PrefixAware,
    RoundRobin,
    RouteKey,
    SessionAffinity,
    make_policy,
)
from mcphive.inference.pool.members import CircuitBreaker, MemberClient
from mcphive.inference.pool.policies import prefix_hashes


@pytest.fixture
def members() -> Iterator[list[MemberState]]:
    urls = [f"http://127.0.0.1:{9000 + i}/v1" for i in range(3)]
    yield [MemberState(url=url, client=MemberClient(url)) for url in urls]


def key(session: str = "s", text: str = "") -> RouteKey:
    messages = [ChatMessage(role="system", content=text)] if text else []
    return RouteKey(session=session, prefixes=prefix_hashes(messages))


def test_round_robin_takes_each_member_in_turn(members: list[MemberState]) -> None:
    policy = RoundRobin()
    assert [policy.choose(members, key()).url for _ in range(6)] == [m.url for m in members] * 2


def test_least_loaded_picks_the_member_with_fewest_requests_ahead(members: list[MemberState]) -> None:
    members[0].in_flight, members[1].in_flight, members[2].in_flight = 3, 1, 2
    assert LeastLoaded().choose(members, key()) is members[1]


def test_server_metrics_count_when_fresh_and_saturate_when_stale(members: list[MemberState]) -> None:
    for member in members:
        member.has_metrics = True
        member.metrics = LoadMetrics(running=4, waiting=4)
        member.metrics_at = time.monotonic()
    members[2].metrics = LoadMetrics(running=1, waiting=0)
    assert members[2].load(stale_after=5.0) == 1.0
    assert LeastLoaded().choose(members, key()) is members[2]
    members[2].metrics_at = time.monotonic() - 60
    assert math.isinf(members[2].load(stale_after=5.0))
    assert LeastLoaded().choose(members, key()) is not members[2]


def test_a_request_of_ours_that_finished_since_the_poll_stops_counting_at_once(members: list[MemberState]) -> None:
    member = members[0]
    member.has_metrics = True
    member.in_flight = 2
    member.observe(LoadMetrics(running=2, waiting=0), ours=2)  # the poll saw our two requests
    assert member.load(stale_after=5.0) == 2.0
    member.in_flight = 0  # both finished before the next poll
    assert member.load(stale_after=5.0) == 0.0


def test_other_clients_load_on_a_shared_member_adds_to_ours(members: list[MemberState]) -> None:
    member = members[0]
    member.has_metrics = True
    member.in_flight = 1
    member.observe(LoadMetrics(running=3, waiting=2), ours=1)  # four of the five are someone else's
    member.in_flight = 2
    assert member.load(stale_after=5.0) == 6.0
    member.observe(LoadMetrics(running=0, waiting=0), ours=2)  # ours not admitted yet when the page was made
    assert member.load(stale_after=5.0) == 2.0


def test_a_member_without_metrics_is_judged_by_in_flight_count(members: list[MemberState]) -> None:
    members[0].has_metrics = False
    members[0].in_flight = 2
    assert members[0].load(stale_after=5.0) == 2.0


def test_affinity_keeps_a_session_on_one_member_and_spreads_sessions(members: list[MemberState]) -> None:
    policy = SessionAffinity()
    chosen = {s: policy.choose(members, key(f"session-{s}")) for s in range(60)}
    assert all(policy.choose(members, key(f"session-{s}")) is m for s, m in chosen.items())
    assert len(set(chosen.values())) == 3


def test_affinity_moves_only_the_sessions_of_a_member_that_left(members: list[MemberState]) -> None:
    policy = SessionAffinity()
    before = {s: policy.choose(members, key(f"session-{s}")) for s in range(60)}
    remaining = members[:2]
    after = {s: policy.choose(remaining, key(f"session-{s}")) for s in range(60)}
    moved = [s for s in before if before[s] is not after[s]]
    assert moved
    assert all(before[s] is members[2] for s in moved)
    back = {s: policy.choose(members, key(f"session-{s}")) for s in range(60)}
    assert back == before


def test_prefix_aware_sends_a_shared_prefix_back_to_the_member_that_has_it(members: list[MemberState]) -> None:
    policy = PrefixAware(balance_abs=2)
    history = "You are a careful assistant. " * 40
    first = policy.choose(members, key(text=history))
    first.in_flight = 1  # busier than the others, but within the balance threshold
    assert policy.choose(members, key(text=history + " and one more turn" * 20)) is first


def test_prefix_aware_falls_back_to_least_loaded_when_the_match_is_too_busy(members: list[MemberState]) -> None:
    policy = PrefixAware(balance_abs=2)
    history = "You are a careful assistant. " * 40
    first = policy.choose(members, key(text=history))
    first.in_flight = 5
    chosen = policy.choose(members, key(text=history))
    assert chosen is not first
    assert chosen.in_flight == 0


def test_prefix_aware_spreads_unrelated_prompts_by_load(members: list[MemberState]) -> None:
    policy = PrefixAware()
    counts: Counter[str] = Counter()
    for i in range(6):
        member = policy.choose(members, key(text=f"prompt number {i} " * 30))
        member.in_flight += 1
        counts[member.url] += 1
    assert sorted(counts.values()) == [2, 2, 2]


def test_prefix_aware_sends_a_new_session_to_the_least_loaded_of_the_members_sharing_its_prefix(
    members: list[MemberState],
) -> None:
    policy = PrefixAware()
    system = "You are a careful assistant. " * 40
    for member in members:  # every member already holds the system prompt every session starts with
        policy.choose([member], key(text=system))
    members[0].in_flight, members[1].in_flight, members[2].in_flight = 1, 1, 0
    assert policy.choose(members, key(text=system + "session 7, turn 1 " * 20)) is members[2]
    members[2].in_flight = 1
    members[0].served, members[1].served, members[2].served = 9, 4, 6  # equal load: the one that served fewest
    assert policy.choose(members, key(text=system + "session 8, turn 1 " * 20)) is members[1]


def test_prefix_hashes_agree_exactly_as_far_as_the_texts_do() -> None:
    base = [ChatMessage(role="system", content="x" * 1000)]
    longer = [*base, ChatMessage(role="user", content="y" * 600)]
    a, b = prefix_hashes(base), prefix_hashes(longer)
    assert len(b) > len(a) > 1
    assert b[: len(a)] == a
    assert prefix_hashes([ChatMessage(role="system", content="z" + "x" * 999)])[0] != a[0]


def test_the_breaker_opens_after_the_threshold_and_half_opens_after_the_cooldown() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=0.0)
    states = []
    for event in (breaker.failure, breaker.failure, breaker.success):
        event()
        states.append(breaker.state)
    # cooldown 0: once open, a probe may go at once (half-open); a success closes it again.
    assert states == ["closed", "half_open", "closed"]
    slow = CircuitBreaker(threshold=1, cooldown=60.0)
    slow.failure()
    assert slow.state == "open"


def test_an_unknown_policy_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="round_robin"):
        make_policy("random")
