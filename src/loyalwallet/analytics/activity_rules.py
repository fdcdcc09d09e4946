"""A guest's purchase days as a bitmap: pure arithmetic, no SQL.

One row per card (analytics_guest_days) answers "did this guest buy in [a, b]" and "had
they bought at least twice by its end" for ANY window of whole local days, so buyers and
repeat buyers of a window are one pass over the guests instead of a pass over the
window's purchases (docs/metrics.md: buyers, repeat purchase rate).

A card's activity is `first` (the ordinal of its first local purchase day,
`date.toordinal()`), `days` (a string of '0'/'1', character i for day first + i, the last
character always '1') and `multi` (the same length, '1' where the day had two purchases
or more; None when no day had). Per day that is a purchase count saturated at 2, which
is all "at least twice" needs: two purchases in the window are two days with a purchase,
or one day with two. Merging counts is saturating addition, so folding purchases in any
order or in any grouping gives the same bitmap (a resumed fold is exact).

Refunds leave a purchase a purchase (docs/metrics.md counts buyers by their purchases,
refunded or not), so they do not touch the bitmap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Activity:
    first: int
    days: str
    multi: str | None = None

    @property
    def last(self) -> int:
        return self.first + len(self.days) - 1

    def counts(self) -> dict[int, int]:
        """Day ordinal -> purchases that day, saturated at 2."""
        out: dict[int, int] = {}
        for i, bit in enumerate(self.days):
            if bit == "1":
                out[self.first + i] = 2 if self.multi is not None and self.multi[i] == "1" else 1
        return out


def build(counts: Mapping[int, int]) -> Activity | None:
    """The activity of purchase counts per day (None when there is none)."""
    days = {d: min(n, 2) for d, n in counts.items() if n > 0}
    if not days:
        return None
    first, last = min(days), max(days)
    bits = ["0"] * (last - first + 1)
    multi = ["0"] * (last - first + 1)
    for d, n in days.items():
        bits[d - first] = "1"
        if n >= 2:
            multi[d - first] = "1"
    return Activity(first, "".join(bits), "".join(multi) if "1" in multi else None)


def merge(activity: Activity | None, counts: Mapping[int, int]) -> Activity | None:
    """`activity` with more purchases (day -> count) added."""
    total = activity.counts() if activity is not None else {}
    for d, n in counts.items():
        if n > 0:
            total[d] = min(2, total.get(d, 0) + n)
    return build(total)


def in_window(
    activity: Activity | None, start: int, end: int, first_anywhere: int | None = None
) -> tuple[bool, bool]:
    """(bought in the days start..end, bought at least twice by its end: twice in it, or
    before it and again in it). For one location's activity, `first_anywhere` is the
    guest's first purchase day at any location ("before" counts any location)."""
    if activity is None or activity.first > end or activity.last < start:
        return False, False
    first = activity.first if first_anywhere is None else min(first_anywhere, activity.first)
    lo = max(start, activity.first) - activity.first
    hi = min(end, activity.last) - activity.first + 1
    hits = activity.days.count("1", lo, hi)
    if hits == 0:
        return False, False
    multi = activity.multi is not None and "1" in activity.multi[lo:hi]
    return True, first < start or hits >= 2 or multi


def window_counts(
    activities: Mapping[int, Activity | None],
    start: int,
    end: int,
    first_anywhere: Mapping[int, int | None] | None = None,
) -> tuple[int, int]:
    """(buyers, repeat buyers) of the window among these guests (by card id)."""
    buyers = repeaters = 0
    for card, activity in activities.items():
        bought, repeat = in_window(activity, start, end, (first_anywhere or {}).get(card))
        buyers += bought
        repeaters += repeat
    return buyers, repeaters
