"""The Jinja2 environment: autoescaping on, translations bound per request."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from loyalwallet.text import LANGUAGES, gettext_for, money, plural, translate
from loyalwallet.web.i18n import pick_language

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "xml", "svg"], default=True),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)


env.filters["money"] = money


def local_time(value: dt.datetime | str | None, fmt: str = "%Y-%m-%d %H:%M", *, tz: zoneinfo.ZoneInfo) -> str:
    """A stored moment (datetime or ISO string; naive means UTC, as SQLite returns it)
    shown on the merchant's wall clock: a café in Moscow reads Moscow time."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(tz).strftime(fmt)


def language(request: Request, saved: str | None = None) -> str:
    return pick_language(
        request.query_params.get("lang"),
        request.cookies.get("lang"),
        saved,
        request.headers.get("accept-language"),
    )


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    lang: str | None = None,
) -> HTMLResponse:
    lang = lang or language(request)
    _ = gettext_for(lang)
    ctx = {
        "request": request,
        "lang": lang,
        "languages": LANGUAGES,
        "_": _,
        "gettext": _,
        "ngettext": partial(plural, lang),
        "tr": partial(translate, lang),
        **(context or {}),
    }
    html = env.get_template(template).render(**ctx)
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response
