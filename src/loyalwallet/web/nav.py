"""The admin's sections: a small registry other parts add their pages to.

    from loyalwallet.web.nav import Section, register
    register(Section("campaigns", N_("Campaigns"), "/admin/campaigns", role="manager", order=50))

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


SECTIONS: dict[str, Section] = {}


def register(section: Section) -> Section:
    SECTIONS[section.key] = section
    return section


def visible(role: str) -> list[Section]:
    return sorted(
        (s for s in SECTIONS.values() if RANK.get(role, 0) >= RANK[s.role]), key=lambda s: (s.order, s.key)
    )


for _section in (
    Section("dashboard", N_("Dashboard"), "/admin", order=10),
    Section("programs", N_("Programs"), "/admin/programs", order=20),
    Section("guests", N_("Guests"), "/admin/guests", order=30),
    Section("purchases", N_("Purchases"), "/admin/purchases", order=40),
    Section("deliveries", N_("Failed deliveries"), "/admin/deliveries", order=80),
    Section("staff", N_("Staff"), "/admin/staff", role="owner", order=90),
    Section("locations", N_("Locations"), "/admin/locations", role="owner", order=91),
    Section("api_keys", N_("API keys"), "/admin/api-keys", role="owner", order=92),
    Section("cashier", N_("Cashier"), "/cashier", role="cashier", order=200),
):
    register(_section)
