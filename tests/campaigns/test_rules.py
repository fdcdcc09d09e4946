"""Pure campaign rules: birthday windows, RFM, holdout, schedules, trigger parameters."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from loyalwallet.campaigns import rules
from loyalwallet.errors import DomainError


def test_birthday_ranges_wrap_the_year_and_leap_day() -> None:
    assert rules.birthday_ranges(dt.date(2026, 5, 10), 0) == [(510, 510)]
    assert rules.birthday_ranges(dt.date(2026, 5, 10), 7) == [(510, 517)]
    assert rules.birthday_ranges(dt.date(2026, 12, 29), 5) == [(1229, 1231), (101, 103)]
    # 2026 is not a leap year: a 29 February birthday is celebrated on the 28th.
    assert rules.birthday_ranges(dt.date(2026, 2, 25), 3) == [(225, 229)]
    assert rules.birthday_ranges(dt.date(2028, 2, 25), 3) == [(225, 228)]
    assert rules.next_birthday(229, dt.date(2026, 2, 1)) == dt.date(2026, 2, 28)
    assert rules.next_birthday(105, dt.date(2026, 12, 30)) == dt.date(2027, 1, 5)
    assert rules.next_birthday(510, dt.date(2026, 5, 10)) == dt.date(2026, 5, 10)


def test_rfm_segments_are_the_dashboards() -> None:
    from loyalwallet.analytics.rules import SEGMENTS

    assert (*SEGMENTS, "no_visits") == rules.RFM_SEGMENTS
    assert set(rules.RfmName.__args__) == set(rules.RFM_SEGMENTS)  # type: ignore[attr-defined]


def test_holdout_draw_is_stable_and_about_the_share() -> None:
    held = [rules.in_holdout(7, card, 2000) for card in range(5000)]
    assert 800 < sum(held) < 1200
    assert held == [rules.in_holdout(7, card, 2000) for card in range(5000)]
    assert not any(rules.in_holdout(7, card, 0) for card in range(100))


def test_render_fills_known_placeholders_only() -> None:
    assert rules.render("{points} pts by {date}, {unknown}", {"points": 40, "date": "01.06"}) == (
        "40 pts by 01.06, {unknown}"
    )


def test_codes_normalise_and_group() -> None:
    assert rules.normalise_code(" abcde-fghjk ") == "ABCDEFGHJK"
    assert rules.normalise_code("abc de fg") == "ABCDEFG"
    assert rules.group_code("ABCDEFGHJK") == "ABCDE-FGHJK"
    assert not set("01OIL") & set(rules.CODE_ALPHABET)


MSG = {"message": {"header": "Hi", "body": "Hello"}}


@pytest.mark.parametrize(
    ("kind", "params", "code"),
    [
        ("happy_hour", {**MSG, "weekdays": [1, 8], "start": "15:00", "end": "17:00"}, "validation_error"),
        ("happy_hour", {**MSG, "weekdays": [], "start": "15:00", "end": "17:00"}, "validation_error"),
        ("happy_hour", {**MSG, "weekdays": [5], "start": "17:00", "end": "17:00"}, "empty_window"),
        ("happy_hour", {**MSG, "weekdays": [5, 5], "start": "15:00", "end": "17:00"}, "validation_error"),
        ("happy_hour", {**MSG, "weekdays": [5], "start": "3pm", "end": "17:00"}, "invalid_time"),
        ("happy_hour", {**MSG, "weekdays": [5], "start": "22:00", "end": "24:00"}, "invalid_time"),
        ("happy_hour", {**MSG, "weekdays": [5], "start": "22:00", "end": 2}, "validation_error"),
        ("birthday", {**MSG, "send_at": "25:00"}, "invalid_time"),
        ("birthday", {**MSG, "send_at": "9:00"}, "invalid_time"),
        ("birthday", {**MSG, "days_before": 40}, "validation_error"),
        ("lapsed", {**MSG, "days": 30, "max_days": 20}, "validation_error"),
        ("lapsed", {"days": 30}, "validation_error"),
        ("points_expiring", {**MSG, "days_before": 0}, "validation_error"),
        ("sometimes", MSG, "validation_error"),
    ],
)
def test_bad_trigger_params_are_refused(kind: str, params: dict, code: str) -> None:
    with pytest.raises(DomainError) as err:
        rules.parse_params(kind, params)
    assert err.value.code == code


def test_run_due_daily_and_happy_hour() -> None:
    tz = ZoneInfo("Europe/Moscow")
    daily = rules.parse_params("lapsed", {**MSG, "send_at": "10:00"})
    morning = dt.datetime(2026, 6, 5, 9, 59, tzinfo=tz)
    assert not rules.run_due("lapsed", daily, morning, None)
    assert rules.run_due("lapsed", daily, morning.replace(hour=10, minute=0), None)
    assert rules.run_due("lapsed", daily, morning.replace(hour=23), dt.date(2026, 6, 4))
    assert not rules.run_due("lapsed", daily, morning.replace(hour=11), dt.date(2026, 6, 5))

    friday = rules.parse_params("happy_hour", {**MSG, "weekdays": [5], "start": "15:00", "end": "17:00"})
    fri = dt.datetime(2026, 6, 5, 15, 30, tzinfo=tz)  # a Friday
    assert rules.run_due("happy_hour", friday, fri, None)
    assert not rules.run_due("happy_hour", friday, fri.replace(hour=17), None)  # window closed
    assert not rules.run_due("happy_hour", friday, fri + dt.timedelta(days=1), None)  # Saturday
    assert not rules.run_due("happy_hour", friday, fri, dt.date(2026, 6, 5))  # already ran today


def test_a_happy_hour_past_midnight_belongs_to_the_day_it_starts() -> None:
    tz = ZoneInfo("Europe/Moscow")
    late = rules.parse_params("happy_hour", {**MSG, "weekdays": [5], "start": "22:00", "end": "02:00"})
    assert late.past_midnight
    fri, sat = dt.date(2026, 6, 5), dt.date(2026, 6, 6)

    def at(day: dt.date, hh: int, mm: int = 0) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hh, mm), tzinfo=tz)

    assert rules.happy_hour_day(late, at(fri, 21, 59)) is None
    assert rules.happy_hour_day(late, at(fri, 22)) == fri
    assert rules.happy_hour_day(late, at(fri, 23, 59)) == fri
    assert rules.happy_hour_day(late, at(sat, 0, 30)) == fri  # still Friday's window
    assert rules.happy_hour_day(late, at(sat, 1, 59)) == fri
    assert rules.happy_hour_day(late, at(sat, 2)) is None  # closed
    assert rules.happy_hour_day(late, at(sat, 22)) is None  # Saturday is not one of its days
    assert rules.happy_hour_day(late, at(fri, 1)) is None  # Thursday's night: not its day
    # Runs once per window: Friday's run at 22:05 counts for the part after midnight too.
    assert rules.run_due("happy_hour", late, at(fri, 22, 5), None)
    assert not rules.run_due("happy_hour", late, at(sat, 0, 30), fri)
    # A server down from 21:00 to 00:30 still sends Friday's window once it is back.
    assert rules.run_due("happy_hour", late, at(sat, 0, 30), dt.date(2026, 5, 29))
    start, end = rules.happy_hour_bounds(late, fri, tz)
    assert (start, end) == (at(fri, 22), at(sat, 2))

    # Friday and Saturday nights: Saturday 01:00 is Friday's, Saturday 23:00 Saturday's.
    both = rules.parse_params("happy_hour", {**MSG, "weekdays": [5, 6], "start": "22:00", "end": "02:00"})
    assert rules.happy_hour_day(both, at(sat, 1)) == fri
    assert rules.happy_hour_day(both, at(sat, 23)) == sat
    assert rules.run_due("happy_hour", both, at(sat, 23), fri)
    # Sunday night closes Saturday's window (Sunday itself is not one of its days).
    assert rules.happy_hour_day(both, at(dt.date(2026, 6, 7), 1, 30)) == sat
    # The same window within a day keeps working as before.
    day = rules.parse_params("happy_hour", {**MSG, "weekdays": [5], "start": "09:00", "end": "15:00"})
    assert not day.past_midnight
    assert rules.happy_hour_bounds(day, fri, tz) == (at(fri, 9), at(fri, 15))


def test_offer_spec() -> None:
    spec = rules.OfferSpec(name="x", kind="percent_off", pct=12.5)
    assert spec.coupon_value() == 1250
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    until = dt.datetime(2026, 6, 10, tzinfo=dt.UTC)
    assert rules.coupon_window(now, 30, None, until) == (None, until)
    assert rules.coupon_window(now, 3, None, until) == (None, now + dt.timedelta(days=3))
    assert rules.coupon_window(now, None, None, None) == (None, None)
