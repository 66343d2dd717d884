"""Collectors for the routing domain set's held-out split (v2): real text from packages nobody on the project wrote.

Each module's ``collect(workdir)`` downloads its pinned packages (``_fetch.fetch``) and returns
``[(source_id, [(text, label, section, file), ...]), ...]``, labelled by where the upstream project
filed each entry, never by its wording. ``build_routing_domain.py`` de-duplicates and balances them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

SECURITY_ID = re.compile(r"\bCVE-\d{4}-\d+|\bGHSA-", re.I)
"""An entry naming a CVE or GHSA id is labelled security, whatever section it was filed under (every split)."""


def spread(items: Sequence[T], cap: int) -> list[T]:
    """At most ``cap`` of ``items``, evenly spaced by position (never chosen by wording)."""
    n = len(items)
    return list(items) if n <= cap else [items[i * n // cap] for i in range(cap)]
