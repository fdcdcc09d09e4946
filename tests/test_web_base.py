"""The shared web base: static files served, translations loaded, Chromium works."""

from __future__ import annotations

from loyalwallet.text import gettext_for, money
from loyalwallet.web.i18n import pick_language


def test_translations_and_language_choice() -> None:
    assert gettext_for("ru")("Balance") == "Баланс"
    assert gettext_for("en")("Balance") == "Balance"
    assert pick_language(None, None, None, "en-US,en;q=0.9") == "en"
    assert pick_language("ru", "en", None, "en") == "ru"
    assert pick_language(None, None, None, None) == "ru"


def test_money_display() -> None:
    assert money(3500050) == "35\u00a0000.50\u00a0₽"
    assert money(-100, "USD") == "-1.00\u00a0$"


def test_static_served(client) -> None:
    r = client.get("/static/app.css")
    assert r.status_code == 200 and "--accent" in r.text


def test_browser_renders_a_page(live_server, page) -> None:
    page.goto(live_server.url + "/static/app.css")
    assert "--accent" in page.content()


def test_staff_pages_show_the_merchants_wall_clock() -> None:
    import datetime as dt
    import zoneinfo

    from loyalwallet.web.templating import local_time

    moscow = zoneinfo.ZoneInfo("Europe/Moscow")
    aware = dt.datetime(2026, 11, 24, 19, 27, tzinfo=dt.UTC)
    assert local_time(aware, tz=moscow) == "2026-11-24 22:27"
    assert local_time(aware.replace(tzinfo=None), tz=moscow) == "2026-11-24 22:27"  # SQLite: naive = UTC
    assert local_time("2026-11-24T22:30:00+00:00", "%d.%m", tz=moscow) == "25.11"
    assert local_time(None, tz=moscow) == ""
