"""The numbers a café owner types into a form: money in major units ("10 000,50"), percents
("7,5") and counts, parsed to integer minor units / Decimal, and shown back the same way."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from loyalwallet.text import CURRENCY_SYMBOLS, amount

# Spaces people put between thousands: plain, no-break, narrow no-break, thin.
_SPACES = re.compile(r"[ \u00a0\u202f\u2009]")
_MONEY = re.compile(r"(\d+)(?:[.,](\d{1,2}))?")
_PERCENT = re.compile(r"\d+(?:[.,]\d+)?")
_INT = re.compile(r"\d+")


class FieldError(ValueError):
    """A text that is not a number of the expected kind (message in English, a msgid)."""


def _clean(text: str, *strip: str) -> str:
    text = _SPACES.sub("", text.strip())
    for s in strip:
        text = text.removesuffix(s)
    return text


def parse_money(text: str) -> int | None:
    """ "10 000,50" -> 1000050 minor units, exactly; blank -> None."""
    raw = _clean(text, *CURRENCY_SYMBOLS.values())
    if not raw:
        return None
    match = _MONEY.fullmatch(raw)
    if match is None:
        raise FieldError("Enter an amount like 1500 or 1500,50")
    units, cents = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(units) * 100 + int(cents)


def parse_percent(text: str) -> Decimal | None:
    """ "7,5" -> Decimal("7.5"); blank -> None. The range is the model's business."""
    raw = _clean(text, "%")
    if not raw:
        return None
    if _PERCENT.fullmatch(raw) is None:
        raise FieldError("Enter a percent like 5 or 7,5")
    try:
        return Decimal(raw.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern already guarantees a number
        raise FieldError("Enter a percent like 5 or 7,5") from None


def parse_int(text: str) -> int | None:
    raw = _clean(text)
    if not raw:
        return None
    if _INT.fullmatch(raw) is None:
        raise FieldError("Enter a whole number")
    return int(raw)


def format_money(minor: int | None, sep: str = ",") -> str:
    """1000050 -> "10 000,50"; 1000000 -> "10 000" (what the inputs show)."""
    return amount(minor, decimal=sep, group=" ", trim_zero_cents=True)


def format_percent(pct: Decimal | int | str | None, sep: str = ",") -> str:
    if pct is None:
        return ""
    return format(Decimal(str(pct)).normalize(), "f").replace(".", sep)
