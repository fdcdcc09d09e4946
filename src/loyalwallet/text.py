"""Text shared by pages, passes, SMS, alerts and exports: money and the message catalogs.

Neutral ground: services, wallet passes and the web shell all import it, and it imports
none of them (nor the web framework).

- Money is an integer in minor units; `money()` shows it with the currency's symbol
  ("1 234.50 ₽", no-break spaces), `amount()` is the bare number for inputs and CSV.
- `CURRENCIES` is the one table of the currencies we know: symbol and minor-unit exponent.
- `gettext_for(lang)` translates English msgids with the gettext catalogs, one per part
  (`web/locale/<lang>/<part>.po`, read by Babel at start-up, no compile step).
"""

from __future__ import annotations

import datetime as dt
import gettext
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po
from babel.support import Translations

# --- currencies ------------------------------------------------------------------------


@dataclass(frozen=True)
class Currency:
    code: str
    symbol: str
    exponent: int = 2  # minor units per unit = 10 ** exponent (kopecks, cents)


CURRENCIES: dict[str, Currency] = {
    c.code: c for c in (Currency("RUB", "₽"), Currency("USD", "$"), Currency("EUR", "€"))
}
CURRENCY_SYMBOLS: dict[str, str] = {code: c.symbol for code, c in CURRENCIES.items()}
NBSP = "\u00a0"


def symbol(currency: str) -> str:
    """ "RUB" -> "₽"; an unknown code is shown as itself."""
    known = CURRENCIES.get(currency)
    return known.symbol if known else currency


def amount(
    minor: int | None,
    *,
    decimal: str = ".",
    group: str = NBSP,
    trim_zero_cents: bool = False,
    exponent: int = 2,
) -> str:
    """The bare number: 123450 -> "1 234.50" (group and decimal separators as asked);
    with `trim_zero_cents`, 100000 -> "1 000". Negative amounts keep their minus sign.
    None -> ""."""
    if minor is None:
        return ""
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(int(minor)), 10**exponent)
    whole = f"{units:,}".replace(",", group)
    if exponent == 0 or (trim_zero_cents and not cents):
        return f"{sign}{whole}"
    return f"{sign}{whole}{decimal}{cents:0{exponent}d}"


def money(minor: int | None, currency: str = "RUB", *, trim_zero_cents: bool = False) -> str:
    """35000 -> "350.00 ₽"; -35050 -> "-350.50 ₽"; with `trim_zero_cents`, 35000 ->
    "350 ₽" (display only; no-break spaces). None -> ""."""
    if minor is None:
        return ""
    known = CURRENCIES.get(currency)
    exponent = known.exponent if known else 2
    number = amount(minor, trim_zero_cents=trim_zero_cents, exponent=exponent)
    return f"{number}{NBSP}{symbol(currency)}"


# --- message catalogs ------------------------------------------------------------------

Gettext = Callable[[str], str]
LOCALE_DIR = Path(__file__).parent / "web" / "locale"
LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"


@lru_cache(maxsize=8)
def translations(lang: str) -> gettext.NullTranslations:
    if lang not in LANGUAGES or lang == "en":
        return gettext.NullTranslations()
    merged = Translations()
    for po in sorted((LOCALE_DIR / lang).glob("*.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        for message in catalog:
            if message.id and message.string and not message.fuzzy:
                key = message.id if isinstance(message.id, str) else message.id[0]
                value = message.string if isinstance(message.string, str) else message.string[0]
                merged._catalog[key] = value
    return merged


def gettext_for(lang: str) -> Gettext:
    return translations(lang).gettext


def units_left(left: int, until: dt.datetime, tz: dt.tzinfo, gettext: Gettext) -> str:
    """ "Left: 12 · until 31.12.2026" (a subscription on the card): a label and a number,
    so no plural forms are needed."""
    return gettext("Left: %(num)s · until %(date)s") % {
        "num": left,
        "date": f"{until.astimezone(tz):%d.%m.%Y}",
    }
