"""The admin's "Invite guests" page: the join link, QR downloads, the A6 tent and the A4
sheet of four, the widget, channels created, changed, archived and restored from forms;
other merchants and cashiers kept out; forms without the CSRF token refused."""

from __future__ import annotations

import io
import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from enrollment_support import BONUS_RULES
from loyalwallet import db
from loyalwallet.enrollment.models import Channel
from loyalwallet.merchants.models import AuditLog, Merchant
from staff_support import add_staff, csrf_of, login
from support import Shop, new_shop

zxingcpp = pytest.importorskip("zxingcpp")
pdfium = pytest.importorskip("pypdfium2")


def qr_texts(image: Image.Image) -> list[str]:
    """What the QR codes in an image say (zxing-cpp, as a phone camera would read them)."""
    return [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]


def pdf_pages(content: bytes) -> list[tuple[float, float, Image.Image]]:
    """Each page's size in mm and its picture at 100 dpi."""
    doc = pdfium.PdfDocument(content)
    out = []
    for page in doc:
        w, h = page.get_size()
        out.append((w / 72 * 25.4, h / 72 * 25.4, page.render(scale=100 / 72).to_pil()))
    return out


def check_pdf(content: bytes, size_mm: tuple[int, int], url: str, codes: int) -> None:
    assert content.startswith(b"%PDF-")
    pages = pdf_pages(content)
    assert len(pages) == 1
    w, h, picture = pages[0]
    assert abs(w - size_mm[0]) < 0.6 and abs(h - size_mm[1]) < 0.6, (w, h)
    assert qr_texts(picture) == [url] * codes


def check_png(content: bytes, url: str) -> None:
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(content))
    image.load()  # decodes whole
    assert qr_texts(image.convert("L")) == [url]


def check_svg(content: bytes, url: str) -> None:
    text = content.decode()
    assert text.startswith("<?xml") and "<svg" in text
    # Chromium-free check: segno draws the same matrix for the same URL.
    import segno

    expected = io.BytesIO()
    segno.make(url, error="m", micro=False).save(expected, kind="svg", scale=10, border=4, xmldecl=True)
    assert text == expected.getvalue().decode()


def _printed(merchant_id: int) -> dict | None:
    with db.read() as session:
        merchant = session.get(Merchant, merchant_id)
        assert merchant is not None
        return (merchant.settings or {}).get("invite")


def test_downloads_are_valid_files_of_the_join_link(app, shop: Shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    owner = login(app, add_staff(shop, "owner"))
    page = owner.get(f"/admin/programs/{pid}/invite")
    assert page.status_code == 200, page.text
    url = f"http://testserver/join/{pid}"
    assert f'value="{url}"' in page.text  # the join link, with its copy button
    assert 'data-copy="join-url"' in page.text and "<svg" in page.text  # the QR drawn inline
    assert "embed=1" in page.text and "&lt;iframe" in page.text  # the widget's code, escaped
    assert _printed(shop.merchant_id) is None
    assert 'id="printed"' in page.text

    base = f"/admin/programs/{pid}/invite"
    svg = owner.get(f"{base}/qr.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.headers["content-disposition"] == f'attachment; filename="qr-program-{pid}.svg"'
    check_svg(svg.content, url)
    printed = _printed(shop.merchant_id)
    assert printed and printed["what"] == "qr_svg"  # the first download is recorded...
    check_png(owner.get(f"{base}/qr.png").content, url)
    a6 = owner.get(f"{base}/tent-a6.pdf")
    assert a6.headers["content-type"] == "application/pdf"
    check_pdf(a6.content, (105, 148), url, codes=1)
    a4 = owner.get(f"{base}/tent-a4.pdf?lang=en")
    check_pdf(a4.content, (210, 297), url, codes=4)
    assert _printed(shop.merchant_id) == printed  # ...once
    with db.read() as session:
        audits = session.scalars(
            select(AuditLog.action).where(
                AuditLog.merchant_id == shop.merchant_id, AuditLog.action == "invite.download"
            )
        ).all()
    assert audits == ["invite.download"]
    assert "First downloaded" in owner.get(f"{base}?lang=en").text
    assert owner.get(f"{base}/tent-a5.pdf").status_code == 404


def test_channels_from_forms(app, shop: Shop, client: TestClient) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    manager = login(app, add_staff(shop, "manager"))
    base = f"/admin/programs/{pid}"
    csrf = csrf_of(manager.get(f"{base}/invite").text)
    html = {"accept": "text/html", "referer": f"http://testserver{base}/invite"}

    # Errors at the fields, in Russian, and what was typed stays.
    bad = manager.post(
        f"{base}/channels",
        data={"csrf": csrf, "name": "", "kind": "table_tent", "slug": "Bad Slug", "offer": "Кофе в подарок"},
        headers={**html, "accept-language": "ru"},
    )
    assert bad.status_code == 422
    assert "Обязательное поле" in bad.text
    assert "Скачать тейбл-тент (A6, PDF)" in bad.text and "Создать канал" in bad.text
    assert "латинских" in bad.text and 'value="Кофе в подарок"' in bad.text

    r = manager.post(
        f"{base}/channels",
        data={
            "csrf": csrf,
            "name": "Терраса",
            "kind": "table_tent",
            "location_id": str(shop.location_id),
            "offer": "Кофе в подарок",
            "slug": "terrace",
            "utm_source": "",
            "utm_campaign": "summer",
        },
        headers=html,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with db.read() as session:
        ch = session.scalars(select(Channel).where(Channel.merchant_id == shop.merchant_id)).one()
    assert (ch.name, ch.kind, ch.slug, ch.location_id, ch.offer) == (
        "Терраса",
        "table_tent",
        "terrace",
        shop.location_id,
        "Кофе в подарок",
    )
    assert (ch.utm_source, ch.utm_medium, ch.utm_campaign) == ("table_tent", "print", "summer")  # by kind
    # The same slug again: a message at the field, nothing written.
    dup = manager.post(
        f"{base}/channels",
        data={"csrf": csrf, "name": "Другая", "kind": "other", "slug": "terrace"},
        headers={**html, "accept-language": "en"},
    )
    assert dup.status_code == 422 and "This short name is taken" in dup.text

    page = manager.get(f"{base}/invite").text
    assert f'id="channel-{ch.id}"' in page and f"/j/{ch.token}" in page
    # A guest scans the channel's QR: the page counts it.
    assert client.get(f"/j/{ch.token}", follow_redirects=False).status_code == 303
    row = re.search(rf'id="channel-{ch.id}">(.*?)</tr>', manager.get(f"{base}/invite").text, re.S)
    assert row and re.findall(r'class="num">(\d+)<', row.group(1)) == ["1", "0", "0"]

    # The channel's own QR leads to its short link; its tent prints its offer.
    short = f"http://testserver/j/{ch.token}"
    check_png(manager.get(f"{base}/invite/qr.png?channel={ch.id}").content, short)
    check_pdf(manager.get(f"{base}/invite/tent-a6.pdf?channel={ch.id}").content, (105, 148), short, 1)

    # Change it, clearing the offer.
    r = manager.post(
        f"{base}/channels/{ch.id}",
        data={
            "csrf": csrf,
            "name": "Терраса летом",
            "location_id": "",
            "offer": "",
            "utm_medium": "tent",
        },
        headers=html,
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.read() as session:
        fresh = session.get(Channel, ch.id)
        assert fresh is not None
        assert (fresh.name, fresh.location_id, fresh.offer) == ("Терраса летом", None, "")
        assert (fresh.utm_source, fresh.utm_medium, fresh.utm_campaign) == ("table_tent", "tent", "summer")

    # Archive: the link stops enrolling, the page lists it among the archived; restore.
    manager.post(f"{base}/channels/{ch.id}/archive", data={"csrf": csrf}, headers=html)
    assert client.get(f"/j/{ch.token}").status_code == 410
    page = manager.get(f"{base}/invite?archived=1").text
    assert 'id="archived-channels"' in page and f"{base}/channels/{ch.id}/restore" in page
    manager.post(f"{base}/channels/{ch.id}/restore", data={"csrf": csrf}, headers=html)
    assert client.get(f"/j/{ch.token}", follow_redirects=False).status_code == 303


def test_other_merchants_cashiers_and_forged_forms_are_refused(app, shop: Shop, client: TestClient) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    ch = shop.post("/api/v1/channels", {"program_id": pid, "kind": "counter_qr", "name": "Till"}).json()
    base = f"/admin/programs/{pid}"

    other = new_shop(client, "Чужое кафе")
    stranger = login(app, add_staff(other, "manager"))
    for path in (
        f"{base}/invite",
        f"{base}/invite/qr.png",
        f"{base}/invite/tent-a6.pdf",
        f"/admin/programs/{other.program('bonus', BONUS_RULES)}/invite/qr.png?channel={ch['id']}",
    ):
        assert stranger.get(path).status_code == 404, path
    csrf = csrf_of(stranger.get("/admin").text)
    for path in (f"{base}/channels", f"{base}/channels/{ch['id']}/archive", f"{base}/channels/{ch['id']}"):
        r = stranger.post(path, data={"csrf": csrf, "name": "x", "kind": "other"})
        assert r.status_code == 404, (path, r.status_code)
    assert _printed(shop.merchant_id) is None and _printed(other.merchant_id) is None

    cashier = login(app, add_staff(shop, "cashier"))
    assert cashier.get(f"{base}/invite").status_code == 403
    assert cashier.get(f"{base}/invite/tent-a6.pdf").status_code == 403

    # A form posted without (or with a wrong) CSRF token writes nothing.
    owner = login(app, add_staff(shop, "owner"))
    for token in (None, "forged"):
        data = {"name": "Forged", "kind": "other"} | ({"csrf": token} if token else {})
        assert owner.post(f"{base}/channels", data=data).status_code == 403
        assert owner.post(f"{base}/channels/{ch['id']}/archive", data=data).status_code == 403
    with db.read() as session:
        names = session.scalars(select(Channel.name).where(Channel.merchant_id == shop.merchant_id)).all()
        status = session.scalar(select(Channel.status).where(Channel.id == ch["id"]))
    assert names == ["Till"] and status == "active"


def test_nav_entry_leads_to_the_programme(app, shop: Shop) -> None:
    owner = login(app, add_staff(shop, "owner"))
    assert "/admin/invite" in owner.get("/admin/programs").text  # in the nav
    none = owner.get("/admin/invite?lang=en")
    assert none.status_code == 200 and "/admin/programs#new-program" in none.text
    pid = shop.program("bonus", BONUS_RULES)
    r = owner.get("/admin/invite", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/admin/programs/{pid}/invite"
    second = shop.program("stamp")
    listed = owner.get("/admin/invite").text
    assert f"/admin/programs/{pid}/invite" in listed and f"/admin/programs/{second}/invite" in listed
    assert f'href="/admin/programs/{pid}/invite"' in owner.get(f"/admin/programs/{pid}").text


def test_the_api_prints_the_a4_sheet_too(shop: Shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    ch = shop.post("/api/v1/channels", {"program_id": pid, "kind": "table_tent", "name": "Tables"}).json()
    assert ch["table_tent_a4_pdf_url"].endswith(f"/api/v1/channels/{ch['id']}/table-tent.pdf?sheet=a4")
    sheet = shop.get(f"/api/v1/channels/{ch['id']}/table-tent.pdf?sheet=a4", role="manager")
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "application/pdf"
    check_pdf(sheet.content, (210, 297), ch["short_url"], codes=4)
    assert _printed(shop.merchant_id)["what"] == "tent_a4"  # type: ignore[index]
    assert shop.get(f"/api/v1/channels/{ch['id']}/table-tent.pdf?sheet=a3").status_code == 422
