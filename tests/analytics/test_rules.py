"""The dashboard's pure computations."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalwallet.analytics import charts, rules
from loyalwallet.errors import DomainError


def test_period_bounds_follow_the_merchant_time_zone() -> None:
    p = rules.parse_period("2026-03-01", "2026-03-31", dt.date(2026, 4, 2), "Europe/Moscow")
    lo, hi = p.utc_bounds()
    assert lo == dt.datetime(2026, 2, 28, 21, tzinfo=dt.UTC) and hi == dt.datetime(
        2026, 3, 31, 21, tzinfo=dt.UTC
    )
    assert p.days == 31
    default = rules.parse_period(None, None, dt.date(2026, 4, 30), "UTC")
    assert (default.start, default.end) == (dt.date(2026, 4, 1), dt.date(2026, 4, 30))
    for bad in (("2026-03-05", "2026-03-01"), ("yesterday", None), ("2020-01-01", "2026-01-01")):
        with pytest.raises(DomainError):
            rules.parse_period(*bad, dt.date(2026, 4, 2), "UTC")


def test_trend_fills_every_bucket() -> None:
    p = rules.Period(dt.date(2026, 3, 1), dt.date(2026, 3, 3), "Europe/Moscow")
    days = [("2026-03-01", 2, 50_000), ("2026-03-02", 1, 30_001), ("2026-02-28", 5, 1)]
    points = rules.trend(days, p)
    assert [(pt.start.day, pt.purchases, pt.revenue, pt.avg_check) for pt in points] == [
        (1, 2, 50_000, 25_000),
        (2, 1, 30_001, 30_001),
        (3, 0, 0, None),
    ]
    assert rules.bucket_for(90) == "week" and rules.bucket_for(365) == "month"
    weeks = rules.trend(
        [("2026-03-04", 1, 100)], rules.Period(dt.date(2026, 3, 1), dt.date(2026, 5, 31), "UTC")
    )
    assert all(pt.start.weekday() == 0 for pt in weeks[1:]) and sum(pt.purchases for pt in weeks) == 1


def _segments(result: rules.Rfm) -> dict[str, int]:
    return {s.key: s.guests for s in result.segments if s.guests}


def test_guest_status_and_rfm_segments() -> None:
    cells = [
        rules.Cell(None, 0, 7, 0),  # never bought
        rules.Cell(2, 12, 10, 1_200_000),  # recent and frequent
        rules.Cell(3, 1, 10, 30_000),  # recent, once
        rules.Cell(20, 3, 4, 90_000),  # three weeks ago, three times
        rules.Cell(45, 5, 10, 400_000),  # frequent, not seen for six weeks
        rules.Cell(60, 2, 3, 50_000),
        rules.Cell(200, 9, 10, 900_000),  # frequent but gone
        rules.Cell(300, 1, 10, 20_000),  # once, long ago
    ]
    assert rules.status_counts(cells) == {"active": 24, "at_risk": 13, "lapsed": 20, "never": 7}
    result = rules.rfm(cells)
    by = {s.key: s for s in result.segments}
    assert _segments(result) == {
        "champions": 10,
        "new": 10,
        "attention": 4,
        "cant_lose": 20,
        "at_risk": 3,
        "lost": 10,
    }
    assert result.guests == 57 and by["champions"].avg_spend == 120_000
    assert by["cant_lose"].spend == 1_300_000 and by["cant_lose"].avg_visits == 7.0
    assert by["cant_lose"].avg_recency == 122.5
    assert result.spend == 2_690_000
    assert result.grid == {(5, 5): 10, (5, 1): 10, (3, 3): 4, (2, 4): 10, (2, 2): 3, (1, 4): 10, (1, 1): 10}


def test_rfm_thresholds() -> None:
    days = {0: 5, 7: 5, 8: 4, 14: 4, 15: 3, 30: 3, 31: 2, 90: 2, 91: 1, 5000: 1}
    assert {d: rules.r_score(d) for d in days} == days
    visits = {1: 1, 2: 2, 3: 3, 4: 3, 5: 4, 9: 4, 10: 5, 400: 5}
    assert {v: rules.f_score(v) for v in visits} == visits
    # The recency bounds are those of "guests now".
    for d in range(0, 200):
        status = next(k for k, n in rules.status_counts([rules.Cell(d, 1, 1, 0)]).items() if n)
        assert status == {5: "active", 4: "active", 3: "active", 2: "at_risk", 1: "lapsed"}[rules.r_score(d)]


def test_rfm_all_ties_get_a_sensible_segment() -> None:
    """The bug: when every guest bought today, ranking put them all in "lost"."""
    assert _segments(rules.rfm([rules.Cell(0, 1, 40, 800_000)])) == {"new": 40}
    assert _segments(rules.rfm([rules.Cell(0, 12, 40, 800_000)])) == {"champions": 40}
    assert _segments(rules.rfm([rules.Cell(120, 1, 40, 800_000)])) == {"lost": 40}
    assert _segments(rules.rfm([rules.Cell(0, 1, 1, 30_000)])) == {"new": 1}  # one guest
    # Two values: each keeps its own segment, however many guests hold the other.
    two = rules.rfm([rules.Cell(1, 1, 99, 0), rules.Cell(40, 6, 1, 0)])
    assert _segments(two) == {"new": 99, "cant_lose": 1}
    assert _segments(rules.rfm([rules.Cell(1, 2, 1, 0), rules.Cell(1, 3, 1, 0)])) == {"potential": 2}
    assert rules.rfm([]).guests == 0 and rules.rfm([rules.Cell(None, 0, 5, 0)]).guests == 0


cells_st = st.lists(
    st.builds(
        rules.Cell,
        recency=st.integers(0, 400),
        visits=st.integers(1, 40),
        guests=st.integers(1, 50),
        spend=st.integers(0, 10**8),
    ),
    max_size=30,
)


@given(cells_st, st.randoms(use_true_random=False))
def test_rfm_properties(cells: list[rules.Cell], rnd: random.Random) -> None:
    result = rules.rfm(cells)
    assert result.guests == sum(c.guests for c in cells) == sum(result.grid.values())
    assert result.spend == sum(c.spend for c in cells)
    # Ties are treated alike: splitting a cell in two, or shuffling, changes nothing.
    split = [
        part
        for c in cells
        for part in (
            [c]
            if c.guests == 1
            else [
                rules.Cell(c.recency, c.visits, 1, 0),
                rules.Cell(c.recency, c.visits, c.guests - 1, c.spend),
            ]
        )
    ]
    rnd.shuffle(split)
    assert _segments(rules.rfm(split)) == _segments(result)
    # A guest's segment does not depend on the other guests.
    for c in cells:
        alone = _segments(rules.rfm([c]))
        assert alone == {rules.rfm_segment(c.recency, c.visits): c.guests}  # type: ignore[arg-type]


@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(1, 500), st.integers(1, 500))
def test_scores_are_monotonic_and_bounded(d1: int, d2: int, v1: int, v2: int) -> None:
    assert 1 <= rules.r_score(d1) <= 5 and 1 <= rules.f_score(v1) <= 5
    if d1 <= d2:
        assert rules.r_score(d1) >= rules.r_score(d2)
    if v1 <= v2:
        assert rules.f_score(v1) <= rules.f_score(v2)


def test_cohort_matrix() -> None:
    sizes = {"2026-01": 10, "2026-02": 4}
    activity = [
        ("2026-01", "2026-01", 6),
        ("2026-01", "2026-03", 3),
        ("2026-02", "2026-02", 4),
        ("2025-12", "2026-01", 9),
    ]
    cohorts = rules.cohorts(sizes, activity, "2026-01", "2026-03")
    assert [c.month for c in cohorts] == ["2026-01", "2026-02", "2026-03"]
    assert cohorts[0].active == [6, 0, 3] and cohorts[0].retention == [0.6, 0.0, 0.3]
    assert cohorts[1].active == [4, 0] and cohorts[2].retention == [None]
    assert [c.month for c in rules.cohorts(sizes, activity, "2025-11", "2026-02")] == ["2026-01", "2026-02"]
    assert rules.cohorts({}, [], "2026-01", "2026-03") == []
    assert rules.month_add("2026-11", 3) == "2027-02" and rules.month_add("2026-01", -1) == "2025-12"


def test_charts_escape_labels_and_scale() -> None:
    svg = charts.bars_and_line(["<b>", "2"], [3, 0], [150.0, None], bar_name="A&B", line_name="avg")
    assert svg.startswith("<svg") and "<b>" not in svg and "&lt;b&gt;" in svg and "A&amp;B" in svg
    assert charts.hbars([]) == ""
    assert "5 / 10" in charts.hbars([("qr", 10, 5)])


def test_figures_net_of_refunds() -> None:
    from loyalwallet.analytics.rules import net_of_refunds, net_totals

    totals = net_totals({"purchases": 4, "revenue": 190_000, "refunded_purchases": 1, "refunded": 110_000})
    assert (totals["revenue_gross"], totals["revenue"], totals["net_purchases"]) == (190_000, 80_000, 3)
    days = net_of_refunds(
        [("2026-12-01", 3, 150_000), ("2026-12-02", 1, 40_000)], [("2026-12-01", 1, 110_000)]
    )
    by_day: dict[str, list[int]] = {}
    for day, n, total in days:
        by_day.setdefault(day, [0, 0])
        by_day[day][0] += n
        by_day[day][1] += total
    assert by_day == {"2026-12-01": [2, 40_000], "2026-12-02": [1, 40_000]}
