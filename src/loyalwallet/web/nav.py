"""The admin's sections (listed in wiring.NAV_SECTIONS).

The admin header lists the sections the logged-in role may open, in `order`. Titles are
English msgids translated at render time (put the Russian in your part's .po file).
"""

from __future__ import annotations

from dataclasses import dataclass

from loyalwallet.merchants.actors import RANK


def N_(message: str) -> str:
    """Marks a string for translation without translating it (translated when shown)."""
    return message


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    path: str
    role: str = "manager"  # the lowest role that sees it
    order: int = 100


# The admin's sections, put here by wiring.install() (wiring.NAV_SECTIONS).
SECTIONS: list[Section] = []


def visible(role: str) -> list[Section]:
    return sorted((s for s in SECTIONS if RANK.get(role, 0) >= RANK[s.role]), key=lambda s: (s.order, s.key))
