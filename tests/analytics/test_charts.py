"""The server-drawn charts: axis scales with exact labels, escaped text."""

from __future__ import annotations

import re

import pytest

from loyalwallet.analytics.charts import _nice_max, bars_and_line


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 4), (1, 4), (4, 4), (5, 8), (10, 12), (18, 20), (21, 24), (99, 100), (361.11, 400), (1234, 1600)],
)
def test_axis_top_has_four_whole_steps(value: float, top: float) -> None:
    assert _nice_max(value) == top
    assert (top / 4) == int(top / 4)


def test_small_counts_get_distinct_tick_labels() -> None:
    svg = bars_and_line(["24.11"], [1], [350.0], bar_name="Purchases", line_name="<Avg>")
    left_ticks = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert left_ticks == ["4", "3", "2", "1", "0"]
    assert "&lt;Avg&gt;" in svg and "<Avg>" not in svg
