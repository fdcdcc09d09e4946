"""Sizes of the in-memory caches, one place, each settable from the environment.

Every cache is an LRU (cachetools): when full, the least recently used entry goes, not
the whole cache, so an installation with more merchants than a cache holds keeps its
busy merchants' entries warm. Each process has its own.

| cache | setting | default |
|---|---|---|
| programme rules (parsed) | LOYALWALLET_CACHE_PROGRAMS | 5000 |
| API keys (resolved, 5 s) | LOYALWALLET_CACHE_API_KEYS | 10000 |
| fraud rules (per merchant, 5 s) | LOYALWALLET_CACHE_FRAUD_RULES | 10000 |
| Google save links (per card) | LOYALWALLET_CACHE_GOOGLE_LINKS | 20000 |
| APNs connections (per certificate / key) | LOYALWALLET_APNS_MAX_CONNECTIONS | 32 |
"""

from __future__ import annotations

from loyalwallet.config import env


def size(name: str, default: int) -> int:
    """LOYALWALLET_CACHE_<NAME>, at least 1 entry (cachetools needs a positive size)."""
    try:
        return max(1, int(env(f"CACHE_{name}", str(default)) or default))
    except ValueError:
        return default
