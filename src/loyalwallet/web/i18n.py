"""Russian and English for every page.

Messages are written in English in templates and code (`_("Balance")`); translations live
in gettext catalogs, one per part so parts never edit the same file:
`web/locale/<lang>/<part>.po`. Babel reads them at start-up (no compile step).
The language is chosen per user: ?lang=, then a `lang` cookie, then the staff member's or
guest's saved locale, then Accept-Language, then Russian.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("ru", "en")
DEFAULT = "ru"


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


def gettext_for(lang: str) -> Callable[[str], str]:
    return translations(lang).gettext


def pick_language(query: str | None, cookie: str | None, saved: str | None, accept: str | None) -> str:
    for candidate in (query, cookie, saved):
        if candidate in LANGUAGES:
            return str(candidate)
    for part in (accept or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT
