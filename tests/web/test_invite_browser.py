"""Inviting guests in headless Chromium, clicking as a person would.

The figure of issue 12: clicks and pages for an owner from an empty install (right after
`loyalwallet merchant create`, run as its own process) to a downloaded table tent, with
no API call and no other command. Then the page itself: QR downloads, the copy button,
a channel created and archived from the forms."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from enrollment.test_invite_page import check_pdf, check_png, check_svg
from staff_support import add_staff
from support import Shop
from web.test_browser import browser_login

pytestmark = pytest.mark.browser

CLICK_GOAL = 10


class Owner:
    """A browser tab that counts what the person does: clicks, and the pages loaded."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.clicks = 0
        self.pages: list[str] = []
        page.on("framenavigated", lambda frame: frame.parent_frame is None and self.pages.append(frame.url))

    def click(self, selector: str) -> None:
        self.clicks += 1
        self.page.click(selector)

    def download(self, selector: str) -> bytes:
        with self.page.expect_download() as info:
            self.click(selector)
        return Path(info.value.path()).read_bytes()


def merchant_create(settings: Any, name: str, login: str) -> dict[str, Any]:
    """`loyalwallet merchant create --owner-login`, as the install guide says, as its own process."""
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
        "LOYALWALLET_BASE_URL": settings.base_url,
    }
    args = ["merchant", "create", "--name", name, "--owner-login", login, "--json"]
    out = subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_empty_install_to_a_printed_table_tent(page, live_server, settings) -> None:
    made = merchant_create(settings, "Кофе с собой", f"owner-{os.getpid()}@tent.test")
    owner = Owner(page)
    page.goto(f"{live_server.url}/login")
    page.fill("#login", made["owner_login"])
    page.fill("#password", made["owner_password"])
    owner.click("button[type=submit]")
    page.wait_for_url("**/admin")

    # The dashboard says where to start.
    setup = page.locator("#setup")
    assert setup.is_visible() and page.locator("#setup-program.todo").count() == 1
    assert "No programme yet" in setup.inner_text()
    owner.click("#setup-program a")
    page.wait_for_url("**/admin/programs#new-program")
    page.fill("#np-name", "Кофейный клуб")
    owner.click("#np-continue")  # bonus points, the first kind, is chosen
    page.wait_for_url("**/admin/programs/new?*")
    owner.click("#create-program")  # the starter rules as they are
    page.wait_for_url("**/admin/programs/*")
    program_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    owner.click("#invite-guests")
    page.wait_for_url(f"**/admin/programs/{program_id}/invite")
    pdf = owner.download("#tent-a6")
    check_pdf(pdf, (105, 148), f"{settings.base_url}/join/{program_id}", codes=1)

    pages = len(owner.pages)
    print(f"\nempty install -> table tent PDF: {owner.clicks} clicks, {pages} pages: {owner.pages}")
    assert owner.clicks <= CLICK_GOAL
    assert owner.clicks == 6 and pages == 6  # login, dashboard, programmes, rules, programme, invite

    # The checklist ticks the programme and the printed QR.
    page.goto(f"{live_server.url}/admin")
    assert page.locator("#setup-program.done").count() == 1
    assert page.locator("#setup-printed.done").count() == 1


def test_invite_page_downloads_copy_and_channels(page, live_server, shop: Shop) -> None:
    pid = shop.program("bonus")
    owner = Owner(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    browser_login(page, live_server, add_staff(shop, "manager"))
    owner.click("nav.sections >> text=Invite guests")  # the only programme: straight to it
    page.wait_for_url(f"**/admin/programs/{pid}/invite")
    url = f"http://testserver/join/{pid}"
    assert page.input_value("#join-url") == url

    owner.click("#join-link [data-copy]")
    # the button's text changes after the clipboard promise resolves: wait for it
    page.wait_for_function("document.querySelector('#join-link [data-copy]').innerText === 'Copied'")
    assert page.locator("#join-link [data-copy]").inner_text() == "Copied"
    assert page.evaluate("navigator.clipboard.readText()") == url

    check_svg(owner.download("#qr-svg"), url)
    png = owner.download("#qr-png")
    check_png(png, url)
    assert Image.open(io.BytesIO(png)).size[0] >= 200
    check_pdf(owner.download("#tent-a4"), (210, 297), url, codes=4)
    assert page.locator("#widget-iframe").input_value().startswith(f'<iframe src="{url}?embed=1"')

    # A channel from the form, with an error first (what was typed stays).
    page.fill("#c-offer", "Капучино в подарок")
    owner.click("#create-channel")
    assert page.locator("#new-channel .error").first.inner_text() == "Required"
    assert page.input_value("#c-offer") == "Капучино в подарок"
    page.fill("#c-name", "Веранда")
    page.select_option("#c-kind", "table_tent")
    owner.click("#create-channel")
    row = page.locator("#channel-list tr[id^=channel-]", has_text="Веранда")
    assert row.count() == 1 and "Table tent" in row.inner_text()
    short = row.locator("input[readonly]").input_value()
    assert "/j/" in short
    tent = owner.download(f"#{row.get_attribute('id')} a[href*='tent-a6']")
    check_pdf(tent, (105, 148), short, codes=1)

    # A click that loads a page returns before the page is there: wait for what it shows.
    owner.click(f"#{row.get_attribute('id')} button:has-text('Archive')")
    expect(page.locator("#show-archived")).to_be_visible()
    expect(page.locator("#channel-list tr[id^=channel-]", has_text="Веранда")).to_have_count(0)
    owner.click("#show-archived")
    expect(page.locator("#archived-channels", has_text="Веранда")).to_have_count(1)
