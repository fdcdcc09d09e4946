"""Pure rules of the points ledger: lots consumed FIFO, expiry, debt.

A positive entry is a lot: `remaining` points of it are still spendable. The sum of the
remaining of live lots equals the balance when it is positive; a negative balance (debt
left by a refund of points already spent) is repaid by the next lots before they
become spendable. Expired lots are written off by an expiry entry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Lot:
    id: int
    remaining: int
    expires_at: dt.datetime | None
    available_at: dt.datetime | None = None

    def live(self, now: dt.datetime) -> bool:
        return self.remaining > 0 and (self.expires_at is None or self.expires_at > now)

    def spendable(self, now: dt.datetime) -> bool:
        return self.live(now) and (self.available_at is None or self.available_at <= now)


def fifo_order(lots: list[Lot]) -> list[Lot]:
    """Soonest-expiring first; never-expiring last; ties by age."""
    return sorted(lots, key=lambda lot: (lot.expires_at or FAR_FUTURE, lot.id))


def available(lots: list[Lot], now: dt.datetime) -> int:
    return sum(lot.remaining for lot in lots if lot.spendable(now))


def pending(lots: list[Lot], now: dt.datetime) -> int:
    return sum(lot.remaining for lot in lots if lot.live(now) and not lot.spendable(now))


def expired(lots: list[Lot], now: dt.datetime) -> list[Lot]:
    return [lot for lot in lots if lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= now]


def take_spendable(lots: list[Lot], points: int, now: dt.datetime) -> list[tuple[int, int]]:
    """Allocate a redemption of `points` over spendable lots, FIFO. The caller has
    checked that enough is available; returns (lot_id, taken) pairs."""
    allocations: list[tuple[int, int]] = []
    left = points
    for lot in fifo_order([lot for lot in lots if lot.spendable(now)]):
        if left == 0:
            break
        take = min(lot.remaining, left)
        allocations.append((lot.id, take))
        left -= take
    if left:
        raise ValueError("not enough spendable points")
    return allocations


def take_for_reversal(
    lots: list[Lot], points: int, now: dt.datetime, *, prefer: int | None = None
) -> tuple[list[tuple[int, int]], int]:
    """Allocate taking back `points` (a refund of an accrual, a negative adjustment).

    Live lots are used whether or not they are spendable yet, the lot `prefer` (the one
    the refunded purchase created) first. Returns the allocations and the part that no
    lot covers: that part becomes debt or is dropped, as the program says.
    """
    allocations: list[tuple[int, int]] = []
    left = points
    ordered = fifo_order([lot for lot in lots if lot.live(now)])
    ordered.sort(key=lambda lot: lot.id != prefer)  # stable: keeps FIFO among the rest
    for lot in ordered:
        if left == 0:
            break
        take = min(lot.remaining, left)
        allocations.append((lot.id, take))
        left -= take
    return allocations, left


def new_lot_remaining(points: int, balance_before: int) -> int:
    """A new lot first repays any debt; what is left of it is spendable."""
    debt = max(0, -balance_before)
    return max(0, points - debt)
