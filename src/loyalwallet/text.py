"""Text shared by pages, passes, SMS, alerts and exports: money and the message catalogs.

Neutral ground: services, wallet passes and the web shell all import it, and it imports
none of them (nor the web framework).

- Money is an integer in minor units; `money()` shows it with the currency's symbol
  ("1 234.50 ₽", no-break spaces), `amount()` is the bare number for inputs and CSV.
- `CURRENCIES` is the one table of the currencies we know: symbol and minor-unit exponent.
- `gettext_for(lang)` translates English msgids with the gettext catalogs, one per part
  (`web/locale/<lang>/<part>.po`, compiled in memory by Babel at start-up, no build step).
- Counts: `plural(lang, "%(num)s stamp", "%(num)s stamps", n)` (`ngettext` in templates)
  picks Russian's three forms (1 штамп, 2 штампа, 5 штампов); a message kept untranslated
  until it is shown (alert texts, offer lines) is a `Plural`, shown by `translate(lang, ...)`.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
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
    """Every part's catalog of `lang` merged into one, plural forms included: each .po is
    compiled in memory with Babel (`write_mo`), so `ngettext` picks Russian's three forms
    by the catalog's `Plural-Forms` (Babel's rule for the locale when a file has none)."""
    if lang not in LANGUAGES or lang == "en":
        return gettext.NullTranslations()
    merged: Translations | None = None
    for po in sorted((LOCALE_DIR / lang).glob("*.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        buffer.seek(0)
        part = Translations(buffer)
        if merged is None:
            merged = part
        else:
            merged.merge(part)
    return merged or gettext.NullTranslations()


def gettext_for(lang: str) -> Gettext:
    return translations(lang).gettext


def units_left(left: int, until: dt.datetime, tz: dt.tzinfo, gettext: Gettext) -> str:
    """ "Left: 12 · until 31.12.2026" (a subscription on the card): a label and a number,
    so no plural forms are needed."""
    return gettext("Left: %(num)s · until %(date)s") % {
        "num": left,
        "date": f"{until.astimezone(tz):%d.%m.%Y}",
    }


Ngettext = Callable[[str, str, int], str]


def ngettext_for(lang: str) -> Ngettext:
    """`ngettext(singular, plural, n)` of `lang`: the form for the count `n` (Russian has
    three: 1 штамп, 2 штампа, 5 штампов). The caller formats the count in: the msgids
    carry `%(num)s` (see `plural()`)."""
    return translations(lang).ngettext


def plural_forms(lang: str, singular: str, plural_: str) -> dict[str, str]:
    """The forms of a counted word by the categories of JavaScript's `Intl.PluralRules`
    ("one", "few", "many", "other"), for a page's script that shows counts."""
    ng = ngettext_for(lang)
    return {
        "one": ng(singular, plural_, 1),
        "few": ng(singular, plural_, 2),
        "many": ng(singular, plural_, 5),
        "other": ng(singular, plural_, 2),
    }


def count(n: int) -> str:
    """A count as shown to people: 12345 -> "12 345" (no-break space)."""
    return f"{int(n):,}".replace(",", NBSP)


def plural(lang: str, singular: str, plural_: str, n: int, **params: object) -> str:
    """The translated form for `n` with `%(num)s` (the grouped count) and any other named
    parameters filled in: plural("ru", "%(num)s stamp", "%(num)s stamps", 21) -> "21 штамп"."""
    return ngettext_for(lang)(singular, plural_, n) % {"num": count(n), **params}


@dataclass(frozen=True)
class Plural:
    """A message about a count, kept untranslated until it is shown: the English singular
    and plural msgids and the name of the parameter that holds the count (Russian picks
    one of three forms by it: 1 покупка, 2 покупки, 5 покупок)."""

    singular: str
    plural: str
    count: str = "n"


Message = str | Plural


class Term(str):
    """One of our own words among a message's parameters (a default name such as "Free
    item"): `translate` translates it with the message; the merchant's words stay as typed."""


def fill(text: str, params: Mapping[str, Any] | None) -> str:
    """Parameters into a translated message, in either style the catalogs use:
    `%(name)s` or `{name}`; a message without parameters stays as it is."""
    if not params:
        return text
    if "%(" in text:
        return text % params
    if "{" in text:
        return text.format(**params)
    return text


def translate_with(_: Gettext, message: str, params: Mapping[str, Any]) -> str:
    """`translate` with a gettext already at hand (a message without plural forms)."""
    return fill(_(message), {k: _(v) if isinstance(v, Term) else v for k, v in params.items()})


def translate(lang: str, message: Message, params: Mapping[str, Any] | None = None) -> str:
    """A message (a msgid or a `Plural`) in `lang`, its parameters filled in."""
    if params and any(isinstance(v, Term) for v in params.values()):
        _ = gettext_for(lang)
        params = {k: _(v) if isinstance(v, Term) else v for k, v in params.items()}
    if isinstance(message, Plural):
        n = int((params or {})[message.count])
        return fill(ngettext_for(lang)(message.singular, message.plural, n), params)
    return fill(gettext_for(lang)(message), params)
