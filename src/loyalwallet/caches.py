"""Sizes of the in-memory caches, one place, each settable from the environment.

Every cache is an LRU (cachetools, or `LRU` below on the hot paths): when full, the least recently used entry goes, not
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

from collections import OrderedDict
from typing import Generic, TypeVar

from loyalwallet.config import env

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A least-recently-used cache of at most `maxsize` entries, on OrderedDict (its
    look-up and reordering are C calls; cachetools' LRUCache.get is four Python calls,
    asked several times per purchase). Not locked: its users hold their own lock."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


def size(name: str, default: int) -> int:
    """LOYALWALLET_CACHE_<NAME>, at least 1 entry (cachetools needs a positive size)."""
    try:
        return max(1, int(env(f"CACHE_{name}", str(default)) or default))
    except ValueError:
        return default
