from pricefeed.cache import PriceCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_stored_price_is_returned():
    cache = PriceCache(clock=FakeClock())
    cache.put("BTC-USD", 64000.5)
    assert cache.get("BTC-USD") == 64000.5


def test_an_unknown_symbol_is_a_miss():
    assert PriceCache().get("NOPE") is None


def test_entries_expire_after_the_ttl():
    clock = FakeClock()
    cache = PriceCache(ttl_seconds=30, clock=clock)
    cache.put("ETH-USD", 3100.0)
    clock.now = 31
    assert cache.get("ETH-USD") is None
    assert len(cache) == 0


def test_warm_skips_non_positive_prices():
    cache = PriceCache(clock=FakeClock())
    skipped = cache.warm({"BTC-USD": 64000.0, "BAD": 0.0})
    assert skipped == ["BAD"]
    assert cache.get("BTC-USD") == 64000.0
