"""What the Google Wallet modules remember in memory across calls, shared by issuer.py,
links.py and sync.py; `issuer.reset_cache()` forgets all of it."""

from __future__ import annotations

import threading

from cachetools import LRUCache

from loyalwallet.caches import size

lock = threading.Lock()
# Class id -> (content hash recorded as at Google, until when to trust that): spares
# every object sync its google_classes lookup. Only for GOOGLE_CONFIG_TTL seconds, as
# another process may change a class; a new design changes the hash anyway.
classes_seen: dict[str, tuple[str, float]] = {}
assets_seen: set[tuple[int, str]] = set()  # (merchant id, sha256) of stored assets
# Card id -> (object id, key id, save JWT); least recently used go first (under `lock`).
links: LRUCache[int, tuple[str, str, str]] = LRUCache(size("GOOGLE_LINKS", 20_000))
