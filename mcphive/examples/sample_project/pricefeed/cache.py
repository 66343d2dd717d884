"""An in-memory price cache whose entries expire."""

import os
import time
from collections.abc import Callable


class PriceCache:
    def __init__(self, ttl_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, float]] = {}

    def get(self, symbol: str) -> float | None:
        entry = self._entries.get(symbol)
        if entry is None:
            return None
        price, stored_at = entry
        if self._clock() - stored_at > self.ttl_seconds:
            del self._entries[symbol]
            return None
        return price

    def put(self, symbol: str, price: float) -> None:
        """Store ``price`` for ``symbol``, stamped with the current time."""
        self._entries[symbol] = (price, self._clock())

    def warm(self, quotes: dict[str, float], skipped: list[str] = []) -> list[str]:
        """Preload several quotes at once; returns the symbols skipped for a non-positive price."""
        for symbol, price in quotes.items():
            if price <= 0:
                skipped.append(symbol)
                continue
            self.put(symbol, price)
        return skipped

    def __len__(self) -> int:
        return len(self._entries)
