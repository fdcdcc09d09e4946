"""Printable anonymous coupon codes: a CSV for a print shop or a POS, and an A4 PDF of
cut-out coupons, each with its code in large type and as a QR code (a 2D scanner at the
till types the code into the coupon field).

The PDF is vector (fpdf2): text stays sharp and 10 000 codes make a file of a few MB.
Text is set in Roboto, shipped as a Python package, so Cyrillic prints on any host.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from functools import lru_cache

import segno

from loyalwallet.campaigns.rules import group_code
from loyalwallet.cards.models import Coupon
from loyalwallet.text import gettext_for, plural

COLUMNS, ROWS = 3, 8  # 24 coupons per A4 page
PDF_PART = 960  # coupons per PDF file (40 pages): big batches come as several files
PAGE_W, PAGE_H, MARGIN = 210.0, 297.0, 8.0


def _value_text(coupon: Coupon, currency: str, _: Callable[[str], str], lang: str = "en") -> str:
    if coupon.kind == "percent_off":
        pct = coupon.value / 100
        return f"-{pct:g}%"
    if coupon.kind == "fixed_off":
        units, cents = divmod(coupon.value, 100)
        return f"-{units}{'.' + format(cents, '02d') if cents else ''} {currency}"
    if coupon.kind == "bonus_points":
        return plural(lang, "+%(num)s point", "+%(num)s points", coupon.value)
    return _("Free item")


def csv_bytes(coupons: Sequence[Coupon], currency: str = "RUB") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    from loyalwallet.wallet.apple.service import coupon_pass_url

    writer.writerow(
        [
            "code",
            "printed_code",
            "name",
            "kind",
            "value",
            "uses",
            "valid_from",
            "valid_until",
            "apple_wallet_url",
        ]
    )
    for c in coupons:
        writer.writerow(
            [
                c.code,
                group_code(c.code),
                c.name,
                c.kind,
                c.value,
                c.uses_left,
                c.valid_from.isoformat() if c.valid_from else "",
                c.valid_until.isoformat() if c.valid_until else "",
                coupon_pass_url(c),
            ]
        )
    # A BOM so spreadsheet programs open Cyrillic names right.
    return ("\ufeff" + out.getvalue()).encode()


@lru_cache(maxsize=4)
def _font(weight: int) -> str:
    """A static Roboto of this weight, cut once from the variable font and kept under the
    data dir (cutting takes a second or two; reading it back, milliseconds)."""
    import os
    import tempfile

    import fontpkg_roboto
    from fontTools.ttLib import TTFont
    from fontTools.varLib import instancer

    from loyalwallet.config import get_settings

    folder = get_settings().data_dir / "cache" / "fonts"
    path = folder / f"roboto-{weight}.ttf"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        source = TTFont(str(fontpkg_roboto.ROOT / "files" / "Roboto[wdth,wght].ttf"))
        static = instancer.instantiateVariableFont(source, {"wght": weight, "wdth": 100})
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".ttf")
        os.close(fd)
        static.save(tmp)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return str(path)


def _qr_png(data: str) -> io.BytesIO:
    buf = io.BytesIO()
    segno.make(data, error="m", micro=False).save(buf, kind="png", scale=4, border=1)
    buf.seek(0)
    return buf


def pdf_bytes(
    coupons: Sequence[Coupon],
    *,
    merchant_name: str,
    currency: str = "RUB",
    tz_name: str = "UTC",
    lang: str = "ru",
) -> bytes:
    import zoneinfo

    tz = zoneinfo.ZoneInfo(tz_name)
    _ = gettext_for(lang)
    from fpdf import FPDF  # here: importing it costs every command and process ~0.5 s

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.add_font("Roboto", "", _font(400))
    pdf.add_font("Roboto", "B", _font(700))
    cell_w = (PAGE_W - 2 * MARGIN) / COLUMNS
    cell_h = (PAGE_H - 2 * MARGIN) / ROWS
    qr = cell_h - 8
    for i, coupon in enumerate(coupons):
        slot = i % (COLUMNS * ROWS)
        if slot == 0:
            pdf.add_page()
        x = MARGIN + (slot % COLUMNS) * cell_w
        y = MARGIN + (slot // COLUMNS) * cell_h
        pdf.set_draw_color(170, 170, 170)
        pdf.set_dash_pattern(dash=1, gap=1)
        pdf.rect(x, y, cell_w, cell_h)  # the cutting line
        pdf.set_dash_pattern()
        pdf.image(_qr_png(coupon.code), x + 2, y + 4, qr, qr)
        tx, tw = x + qr + 4, cell_w - qr - 6
        pdf.set_xy(tx, y + 3)
        pdf.set_font("Roboto", "", 7)
        pdf.cell(tw, 3.5, merchant_name[:40])
        pdf.set_xy(tx, y + 7.5)
        pdf.set_font("Roboto", "B", 13)
        pdf.cell(tw, 6, _value_text(coupon, currency, _, lang))
        pdf.set_xy(tx, y + 14)
        pdf.set_font("Roboto", "", 7.5)
        pdf.multi_cell(tw, 3.4, coupon.name[:80], max_line_height=3.4)
        pdf.set_xy(tx, y + cell_h - 12)
        pdf.set_font("Roboto", "B", 9.5)
        pdf.cell(tw, 4.5, group_code(coupon.code))
        pdf.set_xy(tx, y + cell_h - 7)
        pdf.set_font("Roboto", "", 6.5)
        if coupon.valid_until is not None:
            pdf.cell(
                tw, 3, _("valid until {date}").format(date=f"{coupon.valid_until.astimezone(tz):%d.%m.%Y}")
            )
    if not coupons:
        pdf.add_page()
    return bytes(pdf.output())
