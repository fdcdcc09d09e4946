"""Pure rules of visit feedback: the settings, what an answer may hold, the windows, and
the figures of the dashboard (average, distribution, share of 5s minus share of ≤3s)."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# "What was wrong" choices, stable keys (labels are translated on the page).
PROBLEMS: dict[str, str] = {
    "wait": "Long wait",
    "service": "Service",
    "quality": "Food or drinks",
    "cleanliness": "Cleanliness",
    "price": "Price",
    "other": "Something else",
}
SCORES = (1, 2, 3, 4, 5)
LOW_SCORE = 3  # this or lower alerts the owner at once
ANSWER_WINDOW = dt.timedelta(days=7)  # after the purchase, the link takes a first answer
EDIT_WINDOW = dt.timedelta(hours=24)  # after the first answer, the guest may change it
COMMENT_MAX = 1000
REVIEW_SITES: dict[str, str] = {"yandex": "Yandex Maps", "twogis": "2GIS", "google": "Google"}


def _https(value: str | None) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    host = value[len("https://") :].split("/", 1)[0]
    if (
        not value.lower().startswith("https://")
        or not host
        or len(value) > 500
        or any(ch.isspace() or ch in "<>\"'`" or ord(ch) < 32 for ch in value)
    ):
        raise ValueError("a review link must be an https:// address")
    return value


class ReviewLinks(BaseModel):
    model_config = ConfigDict(extra="forbid")
    yandex: str | None = None
    twogis: str | None = None
    google: str | None = None

    @field_validator("yandex", "twogis", "google")
    @classmethod
    def _check(cls, value: str | None) -> str | None:
        return _https(value)

    def listed(self) -> list[dict[str, str]]:
        return [
            {"site": key, "name": name, "url": url}
            for key, name in REVIEW_SITES.items()
            if (url := getattr(self, key))
        ]


class FeedbackSettings(BaseModel):
    """merchant.settings["feedback"]. `reward_points` is given for answering at all, the
    same whatever the score (a reward tied to the score would buy fives)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    reward_points: int = Field(default=0, ge=0, le=100_000)
    # Location id (as a string: JSON keys) -> its public review pages.
    review_links: dict[str, ReviewLinks] = Field(default_factory=dict)

    @field_validator("review_links")
    @classmethod
    def _keys(cls, value: dict[str, ReviewLinks]) -> dict[str, ReviewLinks]:
        for key in value:
            if not key.isdigit():
                raise ValueError("review links are keyed by location id")
        return value


@dataclass(frozen=True)
class Answer:
    score: int
    problems: list[str]
    comment: str | None


def clean_comment(raw: str | None) -> str | None:
    """Trimmed, control characters (but line breaks) removed, at most COMMENT_MAX. The
    text is kept as typed: pages escape it (Jinja autoescape), Telegram gets html.escape."""
    if raw is None:
        return None
    text = "".join(
        ch for ch in unicodedata.normalize("NFC", raw) if ch in "\n\t" or unicodedata.category(ch)[0] != "C"
    )
    text = text.replace("\r", "").strip()
    return text[:COMMENT_MAX] or None


def parse_answer(score: Any, problems: Iterable[Any], comment: Any) -> Answer:
    """Raises ValueError (with the field's name first) on what a guest cannot have sent."""
    try:
        value = int(str(score).strip())
    except (TypeError, ValueError):
        raise ValueError("score: choose from 1 to 5 stars") from None
    if value not in SCORES:
        raise ValueError("score: choose from 1 to 5 stars")
    chosen: list[str] = []
    for p in problems:
        if p not in PROBLEMS:
            raise ValueError("problems: not one of the choices")
        if p not in chosen:
            chosen.append(p)
    if comment is not None and not isinstance(comment, str):
        raise ValueError("comment: must be text")
    if isinstance(comment, str) and len(comment) > COMMENT_MAX * 4:
        raise ValueError("comment: too long")
    # "What was wrong" belongs to a score that is not perfect.
    return Answer(value, chosen if value < 5 else [], clean_comment(comment))


def answer_open(purchase_at: dt.datetime, answered_at: dt.datetime | None, now: dt.datetime) -> bool:
    """A first answer within ANSWER_WINDOW of the purchase; an edit within EDIT_WINDOW of it."""
    if answered_at is not None:
        return now - answered_at <= EDIT_WINDOW
    return now - purchase_at <= ANSWER_WINDOW


def is_low(score: int) -> bool:
    return score <= LOW_SCORE


@dataclass(frozen=True)
class Summary:
    count: int
    average: float | None
    distribution: dict[int, int]
    net: float | None  # share of 5s minus share of ≤3s, in percent (-100..100)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "average": None if self.average is None else round(self.average, 2),
            "distribution": {str(k): v for k, v in self.distribution.items()},
            "net": None if self.net is None else round(self.net, 1),
        }


def summarise(distribution: dict[int, int]) -> Summary:
    dist = {s: int(distribution.get(s, 0)) for s in SCORES}
    count = sum(dist.values())
    if not count:
        return Summary(0, None, dist, None)
    average = sum(s * n for s, n in dist.items()) / count
    low = sum(n for s, n in dist.items() if is_low(s))
    net = (dist[5] - low) * 100.0 / count
    return Summary(count, average, dist, net)


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())
