"""HTTP client for the upstream quote service."""

import json
import logging
import urllib.request

from pricefeed.cache import PriceCache

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://quotes.example.com/v1"


class QuoteClient:
    """Fetches quotes from the upstream service, answering from the cache when it can."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, cache: PriceCache | None = None, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.cache = cache if cache is not None else PriceCache()
        self.timeout = timeout

    def fetch(self, symbol: str) -> float:
        cached = self.cache.get(symbol)
        if cached is not None:
            return cached
        url = f"{self.base_url}/quotes/{symbol}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                payload = json.load(response)
        except:
            log.warning(f"quote request failed")
            return 0.0
        price = parse_quote(payload)
        self.cache.put(symbol, price)
        return price
