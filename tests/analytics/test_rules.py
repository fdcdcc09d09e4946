"""The dashboard's pure computations."""

from __future__ import annotations

import datetime as dt

import pytest

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


def test_guest_status_and_rfm_segments() -> None:
    cells = [
        rules.Cell(None, 0, 7, 0),  # never bought
        rules.Cell(2, 12, 10, 1_200_000),  # recent and frequent
        rules.Cell(3, 1, 10, 30_000),  # recent, once
        rules.Cell(45, 5, 10, 400_000),
        rules.Cell(200, 9, 10, 900_000),  # frequent but gone
        rules.Cell(300, 1, 10, 20_000),  # once, long ago
    ]
    assert rules.status_counts(cells) == {"active": 20, "at_risk": 10, "lapsed": 20, "never": 7}
    result = rules.rfm(cells)
    by = {s.key: s for s in result.segments}
    assert result.guests == 50 and sum(by[k].guests for k in rules.SEGMENTS) == 50
    assert by["champions"].guests == 10 and by["champions"].avg_spend == 120_000
    assert by["new"].guests == 10
    assert by["cant_lose"].guests == 10
    assert by["lost"].guests == 10
    assert result.spend == 2_550_000


def test_quintile_scores_treat_ties_alike() -> None:
    scores = rules.quintile_scores({1: 60, 2: 20, 10: 20}, higher_is_better=True)
    assert scores == {1: 1, 2: 4, 10: 5}
    assert rules.quintile_scores({}, True) == {}


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
    assert rules.month_add("2026-11", 3) == "2027-02" and rules.month_add("2026-01", -1) == "2025-12"


def test_charts_escape_labels_and_scale() -> None:
    svg = charts.bars_and_line(["<b>", "2"], [3, 0], [150.0, None], bar_name="A&B", line_name="avg")
    assert svg.startswith("<svg") and "<b>" not in svg and "&lt;b&gt;" in svg and "A&amp;B" in svg
    assert charts.hbars([]) == ""
    assert "5 / 10" in charts.hbars([("qr", 10, 5)])
