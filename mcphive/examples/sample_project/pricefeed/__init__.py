"""pricefeed: fetch, cache and price market quotes."""

from pricefeed.cache import PriceCache
from pricefeed.pricing import apply_discount, round_price

__all__ = ["PriceCache", "apply_discount", "round_price"]
__version__ = "0.3.1"
