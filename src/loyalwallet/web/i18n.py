"""Russian and English for every page: which language a request gets.

Messages are written in English in templates and code (`_("Balance")`); translations live
in gettext catalogs, one per part so parts never edit the same file:
`web/locale/<lang>/<part>.po`, read by `loyalwallet.text.gettext_for` (shared with the
services that write SMS, passes and alerts).
The language is chosen per user: ?lang=, then a `lang` cookie, then the staff member's or
guest's saved locale, then Accept-Language, then Russian.
"""

from __future__ import annotations

from loyalwallet.text import DEFAULT_LANGUAGE, LANGUAGES


def pick_language(query: str | None, cookie: str | None, saved: str | None, accept: str | None) -> str:
    for candidate in (query, cookie, saved):
        if candidate in LANGUAGES:
            return str(candidate)
    for part in (accept or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE
