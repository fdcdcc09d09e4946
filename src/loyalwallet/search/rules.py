"""Which name fragments are indexed and searched (pure: no keys, no database)."""

from __future__ import annotations

import re
import unicodedata

MIN_PREFIX = 2
MAX_PREFIX = 12
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Case and accents folded; ё is е (Russian spelling varies)."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.replace("ё", "е").replace("й", "и")


def words(text: str | None) -> list[str]:
    return _WORD.findall(normalise(text or ""))


def prefixes(name: str | None) -> set[str]:
    """Every prefix of 2..12 letters of every word: "Анна Петрова" -> ан, анн, анна, пе, пет, ..."""
    out: set[str] = set()
    for word in words(name):
        for n in range(MIN_PREFIX, min(len(word), MAX_PREFIX) + 1):
            out.add(word[:n])
    return out


def query_terms(query: str) -> list[str]:
    """What a search for `query` looks up: each word, cut to the longest indexed prefix."""
    terms = {w[:MAX_PREFIX] for w in words(query) if len(w) >= MIN_PREFIX}
    return sorted(terms)


def matches(name: str | None, query: str) -> bool:
    """The exact check after the index narrowed the guests down: every word of the
    query starts a word of the name."""
    name_words = words(name)
    return all(any(w.startswith(term) for w in name_words) for term in words(query))
