"""Pure rules of campaigns: segment specs, RFM, birthday windows, holdout, trigger
parameters and schedules, offers, message templates. No database, no web.

Where a rule needs SQL (segments.py) it reads its constants from here, so the meaning
of a segment is written once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from loyalwallet.analytics.rules import SEGMENTS as ANALYTICS_SEGMENTS
from loyalwallet.errors import CODES, DomainError, Explained

Points = Annotated[StrictInt, Field(ge=0, le=10**6)]
Money = Annotated[StrictInt, Field(ge=0, le=10**11)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse(model: type[BaseModel], raw: Any, where: str) -> Any:
    """Validate `raw`; DomainError(validation_error) with field errors under `where`."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"loc": [where, *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        first = errors[0]
        detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        # A validator may raise PydanticCustomError with one of our codes (invalid_time, ...).
        code = first["type"] if first["type"] in CODES else "validation_error"
        raise DomainError(code, detail, errors=errors) from None


# --- segments --------------------------------------------------------------------------


# Every number a segment holds is bounded, so no query overflows (a date 10**9 days ago).
_Amount = Annotated[StrictInt, Field(ge=-(10**15), le=10**15)]
_Days = Annotated[StrictInt, Field(ge=0, le=36_600)]  # a century of days


class Range(_Strict):
    min: _Amount | None = None
    max: _Amount | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class DayRange(Range):
    min: _Days | None = None
    max: _Days | None = None


# RFM segments are the dashboard's (analytics.rules: R and F scored on fixed café
# thresholds of recency and purchases, named from the R x F grid), plus guests who never bought.
RFM_SEGMENTS = (*ANALYTICS_SEGMENTS, "no_visits")
RfmName = Literal[
    "champions", "loyal", "potential", "new", "attention", "cant_lose", "at_risk", "lost", "no_visits"
]


class Segment(_Strict):
    """Which cards a campaign or trigger reaches. Every condition given must hold."""

    program_ids: (
        Annotated[list[Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]], Field(min_length=1, max_length=50)]
        | None
    ) = None
    tiers: Annotated[list[Annotated[str, Field(max_length=100)]], Field(min_length=1)] | None = None
    balance: Range | None = None  # points
    stamps: Range | None = None
    visits: Range | None = None
    spend: Range | None = None  # lifetime, minor units
    last_visit_days: DayRange | None = None  # days since the last visit (min=30: not seen for 30 days)
    never_visited: StrictBool | None = None  # True: no purchase yet; False: at least one
    joined_days: DayRange | None = None  # days since the card was issued
    birthday_in_days: Annotated[StrictInt, Field(ge=0, le=60)] | None = None  # 0 = today
    channels: Annotated[list[Annotated[str, Field(max_length=64)]], Field(min_length=1)] | None = None
    rfm: Annotated[list[RfmName], Field(min_length=1)] | None = None
    # Marketing goes only to guests who agreed to it; campaigns always keep this on.
    marketing_consent: StrictBool = True


def parse_segment(raw: dict[str, Any] | None) -> Segment:
    return parse(Segment, raw or {}, "segment")


def birthday_ranges(today: dt.date, days: int) -> list[tuple[int, int]]:
    """Inclusive MMDD ranges (month*100+day) of birthdays from today to today+days.
    Wraps the new year; in a non-leap year 29 February counts as 28 February."""
    end = today + dt.timedelta(days=days)
    start_md = today.month * 100 + today.day
    end_md = end.month * 100 + end.day

    def leap_fix(md: int, year: int) -> int:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 229 if md == 228 and not leap else md

    end_md = leap_fix(end_md, end.year)
    if end.year == today.year:
        return [(start_md, end_md)]
    return [(start_md, 1231), (101, end_md)]


def next_birthday(birth_md: int, today: dt.date) -> dt.date:
    """The date of the next birthday on or after today (29 Feb -> 28 Feb off leap years)."""
    month, day = divmod(birth_md, 100)
    for year in (today.year, today.year + 1):
        try:
            date = dt.date(year, month, day)
        except ValueError:
            date = dt.date(year, month, 28)
        if date >= today:
            return date
    raise ValueError(f"bad birth_md {birth_md}")  # pragma: no cover


def in_holdout(campaign_id: int, card_id: int, holdout_bp: int) -> bool:
    """A stable pseudo-random draw: the same card stays in or out if asked again."""
    if holdout_bp <= 0:
        return False
    digest = hashlib.sha256(f"{campaign_id}:{card_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000 < holdout_bp


# --- messages --------------------------------------------------------------------------


class Message(_Strict):
    """A push: `header` is the Google Wallet message title; `body` is what the Apple pass
    shows (with a change alert) and the Google message text."""

    header: Annotated[str, Field(min_length=1, max_length=100)]
    body: Annotated[str, Field(min_length=1, max_length=500)]


class _Values(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def render(template: str, values: dict[str, Any]) -> str:
    """Fill {points}, {date}, {tier}, {offer}...; unknown placeholders stay as written."""
    filled = _PLACEHOLDER.sub(lambda m: str(_Values(values)[m.group(1)]), template)
    return filled[:500]


# --- offers ----------------------------------------------------------------------------

OFFER_KINDS = ("percent_off", "fixed_off", "free_item", "bonus_points")


class OfferSpec(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=500)] = ""
    kind: Literal["percent_off", "fixed_off", "free_item", "bonus_points"]
    # percent_off: `pct` (JSON number, two decimals); fixed_off: minor units; free_item:
    # the most it takes off (0 = the item's price); bonus_points: points.
    pct: Annotated[Decimal, Field(gt=0, le=100, max_digits=5, decimal_places=2)] | None = None
    value: Money = 0
    sku: Annotated[str, Field(max_length=64)] | None = None
    category: Annotated[str, Field(max_length=64)] | None = None
    min_amount: Money = 0
    program_id: StrictInt | None = None
    uses_per_coupon: Annotated[StrictInt, Field(ge=1, le=1000)] = 1
    valid_days: Annotated[StrictInt, Field(ge=1, le=3660)] | None = None
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    max_issued: Annotated[StrictInt, Field(ge=1, le=10**7)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OfferSpec:
        if self.kind == "percent_off" and self.pct is None:
            raise ValueError("a percent_off offer needs pct")
        if self.kind != "percent_off" and self.pct is not None:
            raise ValueError("pct is only for percent_off offers")
        if self.kind in ("fixed_off", "bonus_points") and self.value <= 0:
            raise ValueError(f"a {self.kind} offer needs a positive value")
        for name in ("valid_from", "valid_until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. 2026-12-31T23:59:00+03:00)")
        if self.valid_from and self.valid_until and self.valid_from >= self.valid_until:
            raise ValueError("valid_from must be before valid_until")
        return self

    def coupon_value(self) -> int:
        """What Coupon.value holds: basis points for percent_off, else `value`."""
        return int(self.pct * 100) if self.kind == "percent_off" and self.pct is not None else self.value


def coupon_window(
    now: dt.datetime,
    valid_days: int | None,
    valid_from: dt.datetime | None,
    valid_until: dt.datetime | None,
    cap: dt.datetime | None = None,
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A new coupon's validity: from the offer's start, for valid_days after issue,
    never past the offer's end nor `cap` (e.g. the end of tonight's happy hour)."""
    until_candidates = [d for d in (valid_until, cap) if d is not None]
    if valid_days:
        until_candidates.append(now + dt.timedelta(days=valid_days))
    return valid_from, min(until_candidates) if until_candidates else None


# Codes people type: no 0/O, 1/I/L, so a printed code is read back right.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def normalise_code(code: str) -> str:
    """What the cashier typed -> the stored form: upper case, no spaces or dashes."""
    return re.sub(r"[\s-]+", "", code).upper()


def group_code(code: str) -> str:
    """For print: ABCDE-FGHJK."""
    return "-".join(code[i : i + 5] for i in range(0, len(code), 5))


# --- triggers --------------------------------------------------------------------------

TRIGGER_KINDS = (
    "birthday",
    "points_expiring",
    "lapsed",
    "happy_hour",
    "tier_up",
    "welcome",
    "subscription_ending",
)
# Kinds that run on the schedule (the others react to events as they happen).
SCHEDULED_KINDS = ("birthday", "points_expiring", "lapsed", "happy_hour", "subscription_ending")
# Pure marketing: only guests who agreed to marketing get these. The others tell a guest
# about their own card (a gift, points about to expire, a new tier, their welcome).
MARKETING_KINDS = ("lapsed", "happy_hour")

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(value: str) -> dt.time:
    match = _HHMM.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a time of day HH:MM (00:00-23:59)")
    return dt.time(int(match.group(1)), int(match.group(2)))


def _check_hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise PydanticCustomError(
            "invalid_time", "'{value}' is not a time of day HH:MM (00:00-23:59)", {"value": value[:20]}
        )
    return value


Hhmm = Annotated[StrictStr, AfterValidator(_check_hhmm)]


class _TriggerBase(_Strict):
    message: Message
    points: Points | None = None
    offer_id: StrictInt | None = None
    # Narrows who gets it (the kind's own condition always applies).
    segment: Segment | None = None
    # Local time (merchant's time zone) at which the day's run starts.
    send_at: Hhmm = "10:00"


class BirthdayParams(_TriggerBase):
    days_before: Annotated[StrictInt, Field(ge=0, le=30)] = 0
    # None: the program's own birthday_points (bonus programs).
    points: Points | None = None


class PointsExpiringParams(_TriggerBase):
    days_before: Annotated[StrictInt, Field(ge=1, le=90)] = 7


class SubscriptionEndingParams(_TriggerBase):
    """A prepaid subscription ends within `days_before` days ({name}, {left}, {date})."""

    days_before: Annotated[StrictInt, Field(ge=1, le=30)] = 3


class LapsedParams(_TriggerBase):
    days: Annotated[StrictInt, Field(ge=7, le=730)] = 30
    # Guests gone longer than this are left alone (None: everyone past `days`).
    max_days: Annotated[StrictInt, Field(ge=8, le=3650)] | None = None

    @model_validator(mode="after")
    def _window(self) -> LapsedParams:
        if self.max_days is not None and self.max_days <= self.days:
            raise ValueError("max_days must be greater than days")
        return self


class HappyHourParams(_TriggerBase):
    """A window on some weekdays. An `end` before `start` runs past midnight (22:00-02:00):
    the window belongs to the weekday it starts on and ends the next morning."""

    weekdays: Annotated[list[Annotated[StrictInt, Field(ge=1, le=7)]], Field(min_length=1, max_length=7)]
    start: Hhmm
    end: Hhmm
    send_at: Hhmm = "00:00"  # unused: the message goes out when the window opens

    @model_validator(mode="after")
    def _window(self) -> HappyHourParams:
        if len(set(self.weekdays)) != len(self.weekdays):
            raise ValueError("weekdays must not repeat")
        if self.start == self.end:
            raise PydanticCustomError("empty_window", "start and end are the same time")
        return self

    @property
    def past_midnight(self) -> bool:
        return parse_hhmm(self.end) < parse_hhmm(self.start)


class TierUpParams(_TriggerBase):
    # Only for reaching these tiers (None: any higher tier).
    tiers: Annotated[list[Annotated[str, Field(max_length=100)]], Field(min_length=1)] | None = None


class WelcomeParams(_TriggerBase):
    pass


PARAMS_BY_KIND: dict[str, type[_TriggerBase]] = {
    "birthday": BirthdayParams,
    "points_expiring": PointsExpiringParams,
    "lapsed": LapsedParams,
    "happy_hour": HappyHourParams,
    "tier_up": TierUpParams,
    "welcome": WelcomeParams,
    "subscription_ending": SubscriptionEndingParams,
}
TriggerParams = (
    BirthdayParams
    | PointsExpiringParams
    | LapsedParams
    | HappyHourParams
    | TierUpParams
    | WelcomeParams
    | SubscriptionEndingParams
)


def parse_params(kind: str, raw: dict[str, Any]) -> Any:
    model = PARAMS_BY_KIND.get(kind)
    if model is None:
        raise Explained(
            "validation_error",
            "kind must be one of {trigger_kinds}",
            trigger_kinds=", ".join(TRIGGER_KINDS),
            extra={"field": "kind"},
        )
    return parse(model, raw, "params")


def happy_hour_day(params: HappyHourParams, local_now: dt.datetime) -> dt.date | None:
    """The day whose window is open at `local_now` (None: closed). A window past midnight
    is its start day's: Friday 22:00-02:00 is still Friday's at 01:00 on Saturday."""
    now_t, today = local_now.time(), local_now.date()
    start, end = parse_hhmm(params.start), parse_hhmm(params.end)
    if not params.past_midnight:
        return today if local_now.isoweekday() in params.weekdays and start <= now_t < end else None
    if now_t >= start and local_now.isoweekday() in params.weekdays:
        return today
    yesterday = today - dt.timedelta(days=1)
    if now_t < end and yesterday.isoweekday() in params.weekdays:
        return yesterday
    return None


def happy_hour_bounds(
    params: HappyHourParams, day: dt.date, tz: dt.tzinfo
) -> tuple[dt.datetime, dt.datetime]:
    """When the window of `day` opens and closes (aware, in `tz`)."""
    end_day = day + dt.timedelta(days=1) if params.past_midnight else day
    return (
        dt.datetime.combine(day, parse_hhmm(params.start), tzinfo=tz),
        dt.datetime.combine(end_day, parse_hhmm(params.end), tzinfo=tz),
    )


def run_day(kind: str, params: Any, local_now: dt.datetime) -> dt.date | None:
    """The local day a run of a scheduled trigger at `local_now` is for (None: not its
    time): today from `send_at` on; for a happy hour the day of the open window."""
    if kind == "happy_hour":
        return happy_hour_day(params, local_now)
    return local_now.date() if local_now.time() >= parse_hhmm(params.send_at) else None


def run_due(kind: str, params: Any, local_now: dt.datetime, last_run_on: dt.date | None) -> bool:
    """Should a scheduled trigger run now? Once per local day, from its send time on;
    a happy hour only while a window of its weekdays is open."""
    day = run_day(kind, params, local_now)
    return day is not None and (last_run_on is None or last_run_on < day)


def next_run(
    kind: str, params: Any, tz: dt.tzinfo, now: dt.datetime, last_run_on: dt.date | None
) -> dt.datetime | None:
    """When a scheduled trigger should run next (UTC, aware): `now` when a run is due
    already, else the start of the next day's run that `last_run_on` has not covered;
    None when there is none within a week (a happy hour on no weekday)."""
    local_now = now.astimezone(tz)
    if run_due(kind, params, local_now, last_run_on):
        return now
    at = parse_hhmm(params.start if kind == "happy_hour" else params.send_at)
    for ahead in range(0, 9):
        day = local_now.date() + dt.timedelta(days=ahead)
        start = dt.datetime.combine(day, at, tzinfo=tz)
        if start <= local_now or (last_run_on is not None and day <= last_run_on):
            continue
        if run_day(kind, params, start) == day:
            return start.astimezone(dt.UTC)
    return None


def jitter_seconds(merchant_id: int, spread: float) -> float:
    """A merchant's fixed offset into the minutes after a run's time, so a thousand
    cafés' 10:00 runs do not all land in the same minute."""
    if spread <= 0:
        return 0.0
    return float((merchant_id * 2654435761) % 2**32) / 2**32 * spread


def tier_rank(tier_names: list[str], name: str | None) -> int:
    """Position of a tier in the program's ladder (-1 when unknown)."""
    return tier_names.index(name) if name in tier_names else -1
