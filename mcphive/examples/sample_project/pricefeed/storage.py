"""Snapshots of the price cache on disk, so that a restart starts warm."""

import pickle
from pathlib import Path

from pricefeed.cache import PriceCache


def save_snapshot(cache: PriceCache, path: Path) -> None:
    """Write the cache's entries to ``path``."""
    path.write_bytes(pickle.dumps(dict(cache._entries)))


def load_snapshot(path: Path) -> dict[str, tuple[float, float]]:
    """Read the entries written by :func:`save_snapshot`."""
    return pickle.loads(path.read_bytes())
