"""QR codes (segno), the printable A6 table tent (Pillow, written as PDF), the A4 sheet
of four tents (fpdf2) and PWA icons.

The table tent is drawn at 300 dpi and saved as a one-page PDF of exactly A6
(105 x 148 mm). Text is set in Roboto, shipped as a Python package, so Cyrillic prints
the same on any host whatever fonts it has. The A4 sheet places the same drawing four
times, 2 x 2, with dashed lines to cut along: an ordinary office printer makes four
tents from one sheet.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import segno
from PIL import Image, ImageDraw, ImageFont

from loyalwallet.programs.design import rgb_tuple

DPI = 300
A6_MM = (105, 148)
A4_MM = (210, 297)


def mm(value: float) -> int:
    return round(value / 25.4 * DPI)


def qr_svg(data: str, *, scale: int = 8, border: int = 4, inline: bool = False) -> str:
    qr = segno.make(data, error="m", micro=False)
    if inline:
        return str(qr.svg_inline(scale=scale, border=border, omitsize=True))
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=scale, border=border, xmldecl=True)
    return out.getvalue().decode()


def qr_png(data: str, *, scale: int = 10, border: int = 4) -> bytes:
    out = io.BytesIO()
    segno.make(data, error="m", micro=False).save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


def qr_image(data: str, size: int) -> Image.Image:
    """A QR code as a Pillow image about `size` pixels wide (whole modules, crisp)."""
    qr = segno.make(data, error="m", micro=False)
    modules = qr.symbol_size(border=4)[0]
    img = Image.open(io.BytesIO(qr_png(data, scale=max(1, int(size // modules)), border=4)))
    return img.convert("RGB")


@lru_cache(maxsize=16)
def font(size: int, weight: int = 400) -> ImageFont.FreeTypeFont:
    import fontpkg_roboto

    f = ImageFont.truetype(str(fontpkg_roboto.ROOT / "files" / "Roboto[wdth,wght].ttf"), size)
    f.set_variation_by_axes([weight, 100])  # axes: weight, width
    return f


def _wrap(draw: ImageDraw.ImageDraw, text: str, f: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if draw.textlength(candidate, font=f) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def _centred(
    draw: ImageDraw.ImageDraw,
    y: int,
    text: str,
    f: ImageFont.FreeTypeFont,
    fill: tuple[int, int, int],
    width: int,
    max_lines: int = 3,
) -> int:
    """Draw wrapped, centred text from y; returns the y below it."""
    page_w = draw.im.size[0]
    line_h = int(f.size * 1.25)
    for line in _wrap(draw, text, f, width)[:max_lines]:
        w = draw.textlength(line, font=f)
        draw.text(((page_w - w) / 2, y), line, font=f, fill=fill)
        y += line_h
    return y


@dataclass(frozen=True)
class Tent:
    """What a table tent says: where its QR leads, the brand, the offer and the words."""

    url: str
    short_url: str
    title: str
    offer: str
    details: Sequence[str]
    call_to_action: str
    hint: str
    background: str
    foreground: str
    logo: bytes | None = None


def tent_image(t: Tent) -> Image.Image:
    """An A6 portrait page at 300 dpi: the brand band with logo and name, the offer, a
    large QR code, what to do, and the short link for those who type."""
    w, h = mm(A6_MM[0]), mm(A6_MM[1])
    page = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(page)
    bg, fg = rgb_tuple(t.background), rgb_tuple(t.foreground)
    dark = (31, 26, 23)
    margin = mm(8)
    band_h = mm(34)
    draw.rectangle((0, 0, w, band_h), fill=bg)
    y = mm(6)
    if t.logo:
        try:
            with Image.open(io.BytesIO(t.logo)) as raw:
                img = raw.convert("RGBA")
                img.thumbnail((w - 2 * margin, mm(12)))
                page.paste(img, ((w - img.width) // 2, y), img)
                y += img.height + mm(2)
        except OSError:
            pass  # an unreadable logo leaves the name alone on the band
    y = _centred(draw, y, t.title, font(mm(6.2), 700), fg, w - 2 * margin, max_lines=2)
    y = max(y + mm(4), band_h + mm(5))
    y = _centred(draw, y, t.offer, font(mm(6.5), 800), dark, w - 2 * margin, max_lines=3)
    for line in t.details[:2]:
        y = _centred(draw, y, line, font(mm(3.6)), (90, 82, 76), w - 2 * margin, max_lines=2)
    y += mm(3)
    qr_size = min(mm(58), h - y - mm(30))
    qr = qr_image(t.url, qr_size)
    page.paste(qr, ((w - qr.width) // 2, y))
    y += qr.height + mm(2)
    y = _centred(draw, y, t.call_to_action, font(mm(4.6), 700), dark, w - 2 * margin, max_lines=2)
    y = _centred(draw, y, t.hint, font(mm(3.3)), (90, 82, 76), w - 2 * margin, max_lines=2)
    _centred(draw, h - mm(9), t.short_url.split("://", 1)[-1], font(mm(3.4), 600), bg, w - 2 * margin, 1)
    return page


def table_tent(t: Tent) -> bytes:
    """One A6 portrait PDF page."""
    page = tent_image(t)
    out = io.BytesIO()
    page.save(out, format="PDF", resolution=DPI, title=t.title)
    return out.getvalue()


def tent_sheet(t: Tent) -> bytes:
    """An A4 portrait PDF with four A6 tents (2 x 2) and dashed cutting lines."""
    from fpdf import FPDF  # here: importing it costs every command and process ~0.5 s

    # As JPEG, like the A6 PDF: fpdf2 embeds it as it is (its own PNG re-encoding of a
    # 300 dpi page takes seconds), and the file holds the pixels once for the four.
    picture = io.BytesIO()
    tent_image(t).save(picture, format="JPEG", quality=92)
    w, h = A6_MM
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.set_title(t.title)
    pdf.add_page()
    left, top = (A4_MM[0] - 2 * w) / 2, (A4_MM[1] - 2 * h) / 2
    for col in range(2):
        for row in range(2):
            pdf.image(picture, left + col * w, top + row * h, w, h)
    pdf.set_draw_color(150, 150, 150)
    pdf.set_line_width(0.2)
    pdf.set_dash_pattern(dash=2, gap=2)
    pdf.line(left + w, 0, left + w, A4_MM[1])
    pdf.line(0, top + h, A4_MM[0], top + h)
    pdf.set_dash_pattern()
    return bytes(pdf.output())


def app_icon(size: int, *, background: str, foreground: str, letter: str, logo: bytes | None = None) -> bytes:
    """A square PNG icon for the installed web card: the logo on the brand colour,
    or the first letter of the name."""
    img = Image.new("RGB", (size, size), rgb_tuple(background))
    placed = False
    if logo:
        try:
            with Image.open(io.BytesIO(logo)) as raw:
                mark = raw.convert("RGBA")
                mark.thumbnail((int(size * 0.7), int(size * 0.7)))
                img.paste(mark, ((size - mark.width) // 2, (size - mark.height) // 2), mark)
                placed = True
        except OSError:
            placed = False
    if not placed:
        draw = ImageDraw.Draw(img)
        f = font(int(size * 0.55), 700)
        text = (letter or "★")[:1].upper()
        box = draw.textbbox((0, 0), text, font=f)
        draw.text(
            ((size - (box[2] - box[0])) / 2 - box[0], (size - (box[3] - box[1])) / 2 - box[1]),
            text,
            font=f,
            fill=rgb_tuple(foreground),
        )
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()
