"""Pure rules of the iiko integration: card-number ranges, money, tiers, messages."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

# What the admin sees for iiko's failures: plain words, not HTTP codes.
PLAIN = {
    0: "iikoCloud did not answer (network or timeout); the worker keeps trying",
    401: "iiko does not accept the API login (check it in iikoWeb → API logins)",
    403: "the API login has no right to this method (ask the dealer to enable the loyalty methods)",
    429: "iikoCloud asked us to slow down (rate limit); the worker keeps trying",
}


def plain(status: int, description: str) -> str:
    """A failure in words an owner can act on, with iiko's own text after it."""
    head = PLAIN.get(status) or (
        "iikoCloud failed on its side; the worker keeps trying"
        if status >= 500
        else "iiko refused the request"
    )
    return f"{head}: {description}"[:500]


def check_range(first: int, last: int) -> str | None:
    """Why a reserved card-number range cannot be used, or None."""
    if first <= 0 or last <= 0:
        return "card numbers must be positive"
    if last < first:
        return "the range ends before it starts"
    if len(str(last)) > 20:
        return "card numbers are at most 20 digits"
    if last - first + 1 > 10_000_000:
        return "the range is larger than 10,000,000 numbers"
    return None


def points(balance: Decimal) -> int:
    """iiko's wallet balance (a decimal, 1 = one bonus rouble) as whole points, floored."""
    return int(balance.to_integral_value(rounding=ROUND_FLOOR))


def tier_of(category_ids: list[str], tiers: dict[str, Any]) -> str | None:
    """Our tier for a guest's iiko categories: the first mapped one (mapping order)."""
    for category_id, tier in tiers.items():
        if category_id in category_ids:
            return str(tier)
    return None


def pick_program(programs: list[dict[str, Any]], wallet_id: str | None) -> dict[str, Any] | None:
    """The iiko loyalty programme whose wallet is shown: the one asked for, else the first
    active bonus programme (programType 1), else the first."""
    if wallet_id:
        return next((p for p in programs if p.get("walletId") == wallet_id or p.get("id") == wallet_id), None)
    active = [p for p in programs if p.get("isActive", True)]
    return next((p for p in active if p.get("programType") == 1), active[0] if active else None)
