"""The rating page in headless Chromium on a phone viewport: tap a star, tick what was
wrong, write a comment with script in it, send, see the thanks; its weight."""

from __future__ import annotations

from typing import Any

from feedback_support import buy_and_invite, enable
from support import Shop


def test_rate_a_visit_on_a_phone(live_server: Any, phone_page: Any, shop: Shop) -> None:
    program = shop.program("bonus")
    links = {str(shop.location_id): {"twogis": "https://2gis.ru/firm/7"}}
    enable(shop, review_links=links)
    code = shop.card(program)["code"]
    path, _ = buy_and_invite(shop, code)
    page = phone_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sizes: list[int] = []
    page.on("response", lambda r: sizes.append(len(r.body())) if r.ok else None)

    page.goto(f"{live_server.url}{path}")
    assert page.locator("h1").inner_text() == "Как прошёл ваш визит?"
    weight = sum(sizes)
    assert weight < 60_000, weight  # the page, its CSS: no framework on a phone
    # The star row fits the phone's width and each star is a finger-sized target.
    box = page.locator("label[for=score-1]").bounding_box()
    assert box["width"] >= 44 and box["x"] + box["width"] <= 390

    page.locator("label[for=score-2]").tap()
    page.locator("input[name=problems][value=wait]").check()
    page.fill("textarea[name=comment]", "Долго ждали <script>alert(1)</script>")
    page.locator("button[type=submit]").tap()
    page.wait_for_selector("[data-thanks]")
    assert "Спасибо" in page.locator("[data-thanks] h1").inner_text()
    assert page.locator("textarea[name=comment]").input_value() == "Долго ждали <script>alert(1)</script>"
    assert page.locator("input[name=score][value='2']").is_checked()
    assert dialogs == []

    # Changed to a 5 within the day: the review link of the location is offered.
    page.locator("label[for=score-5]").tap()
    page.locator("button[type=submit]").tap()
    page.wait_for_selector("[data-reviews]")
    assert page.locator("[data-site=twogis]").get_attribute("href") == "https://2gis.ru/firm/7"
