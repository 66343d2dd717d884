"""Routing policies: given the members that may take a request, pick one.

All policies share one interface, ``choose(members, key) -> member``. ``members`` is never empty
and holds only members that are up and not saturated; ``key`` carries what a policy may route on.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mcphive.errors import ConfigError
from mcphive.inference.base import ChatMessage
from mcphive.inference.pool.members import MemberState

__all__ = [
    "LeastLoaded",
    "PrefixAware",
    "RoundRobin",
    "RouteKey",
    "RoutingPolicy",
    "SessionAffinity",
    "make_policy",
    "prefix_hashes",
]

PREFIX_BLOCK_CHARS = 256
PREFIX_MAX_BLOCKS = 64


@dataclass(frozen=True)
class RouteKey:
    """What a request may be routed on.

    Attributes:
        session: A session or task id; requests with the same one belong together.
        prefixes: Hashes of the rendered prompt's prefixes at block boundaries, shortest first.
        stale_after: Seconds after which a member's metrics no longer count (see ``MemberState.load``).
    """

    session: str
    prefixes: tuple[int, ...] = ()
    stale_after: float = 5.0


def _hash(text: str | bytes) -> int:
    data = text.encode() if isinstance(text, str) else text
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def prefix_hashes(messages: Sequence[ChatMessage], block: int = PREFIX_BLOCK_CHARS) -> tuple[int, ...]:
    """Hashes of the rendered conversation's first ``block``, ``2*block``, ... characters.

    A chained hash: block ``k``'s hash covers everything before it, so equal hashes mean equal
    prefixes, which is what a server's prefix cache reuses.
    """
    rendered = "".join(f"<{m.role}>{m.content}</{m.role}>" for m in messages)
    hashes: list[int] = []
    state = hashlib.blake2b(digest_size=8)
    for start in range(0, min(len(rendered), block * PREFIX_MAX_BLOCKS) - block + 1, block):
        state.update(rendered[start : start + block].encode())
        hashes.append(int.from_bytes(state.copy().digest(), "big"))
    return tuple(hashes)


class RoutingPolicy(Protocol):
    """Chooses a member for a request."""

    name: str

    def choose(self, members: Sequence[MemberState], key: RouteKey) -> MemberState:
        """Pick one of ``members`` (never empty) for the request described by ``key``."""
        ...


def _least_loaded(members: Sequence[MemberState], key: RouteKey) -> MemberState:
    # Ties go to the member that has served fewest, so an idle pool still spreads work.
    return min(members, key=lambda m: (m.load(key.stale_after), m.served))


class RoundRobin:
    """Each member in turn."""

    name = "round_robin"

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(self, members: Sequence[MemberState], key: RouteKey) -> MemberState:
        """The next member in turn."""
        return members[next(self._counter) % len(members)]


class LeastLoaded:
    """The member with the fewest requests ahead (server metrics when fresh, else in-flight count)."""

    name = "least_loaded"

    def choose(self, members: Sequence[MemberState], key: RouteKey) -> MemberState:
        """The least-loaded member."""
        return _least_loaded(members, key)


class SessionAffinity:
    """Consistent hashing on the session id: a session stays on one member while it is up.

    Each member has ``replicas`` points on a hash ring; a session goes to the first member
    clockwise from its hash that may take requests, so a member leaving moves only its sessions.
    """

    name = "session_affinity"

    def __init__(self, replicas: int = 64) -> None:
        self._replicas = replicas
        self._ring: list[tuple[int, str]] = []
        self._urls: frozenset[str] = frozenset()

    def _ring_for(self, urls: frozenset[str]) -> list[tuple[int, str]]:
        if urls - self._urls:
            self._urls |= urls
            self._ring = sorted((_hash(f"{url}#{i}"), url) for url in self._urls for i in range(self._replicas))
        return self._ring

    def choose(self, members: Sequence[MemberState], key: RouteKey) -> MemberState:
        """The session's member on the ring, skipping members that may not take requests now."""
        by_url = {m.url: m for m in members}
        ring = self._ring_for(frozenset(by_url))
        start = bisect.bisect(ring, (_hash(key.session), ""))
        for offset in range(len(ring)):
            url = ring[(start + offset) % len(ring)][1]
            if url in by_url:
                return by_url[url]
        return members[0]  # unreachable: every member has points on the ring


class PrefixAware:
    """Cache-aware routing in the manner of SGLang's router.

    Each member keeps an LRU index of the prefix hashes recently routed to it. The member with the
    longest matching prefix wins if its load is within ``balance_abs`` requests of the least-loaded
    member; otherwise (or when nothing matches ``min_blocks``) the least-loaded member wins.
    """

    name = "prefix_aware"

    def __init__(self, *, balance_abs: float = 2.0, min_blocks: int = 1, capacity: int = 8192) -> None:
        self._balance_abs = balance_abs
        self._min_blocks = min_blocks
        self._capacity = capacity
        self._index: dict[str, OrderedDict[int, None]] = {}

    def _match(self, url: str, prefixes: tuple[int, ...]) -> int:
        index = self._index.get(url)
        if not index:
            return 0
        for length in range(len(prefixes), 0, -1):
            if prefixes[length - 1] in index:
                return length
        return 0

    def _remember(self, url: str, prefixes: tuple[int, ...]) -> None:
        index = self._index.setdefault(url, OrderedDict())
        for value in prefixes:
            index[value] = None
            index.move_to_end(value)
        while len(index) > self._capacity:
            index.popitem(last=False)

    def choose(self, members: Sequence[MemberState], key: RouteKey) -> MemberState:
        """The best prefix match unless that would unbalance the pool; records the choice."""
        least = _least_loaded(members, key)
        matches = {m.url: self._match(m.url, key.prefixes) for m in members}
        matched = max(matches.values())
        # Among the members with the longest match (every member, for a prompt whose only match is a prefix
        # all sessions share), the least-loaded one; ties went to the first member, which drew new sessions.
        best = _least_loaded([m for m in members if matches[m.url] == matched], key)
        gap = best.load(key.stale_after) - least.load(key.stale_after)
        chosen = best if matched >= self._min_blocks and gap <= self._balance_abs else least
        self._remember(chosen.url, key.prefixes)
        return chosen


def make_policy(name: str) -> RoutingPolicy:
    """A policy by name: ``round_robin``, ``least_loaded``, ``session_affinity`` or ``prefix_aware``."""
    policies: dict[str, type[RoundRobin | LeastLoaded | SessionAffinity | PrefixAware]] = {
        "round_robin": RoundRobin,
        "least_loaded": LeastLoaded,
        "session_affinity": SessionAffinity,
        "prefix_aware": PrefixAware,
    }
    if name not in policies:
        raise ConfigError(f"unknown routing policy {name!r}; choose one of: {', '.join(policies)}")
    return policies[name]()
