"""A default program logo for Google Wallet (programLogo is required there).

Used only when the design has no logo image: a circle in the card's colours with the
program's initial. Google shows its programLogo as a square cropped to a circle, unlike
Apple's wide logo (programs/images.py), hence a renderer of its own.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from loyalwallet.programs.design import rgb_tuple

SIZE = 660  # Google's recommended programLogo size (square; shown in a circle)
FONTS = ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "DejaVuSans.ttf")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in FONTS:
        try:
            return ImageFont.truetype(name, size)  # Pillow looks in the system font dirs
        except OSError:
            continue
    return ImageFont.load_default(size)


@lru_cache(maxsize=256)
def default_logo(text: str, background: str, foreground: str) -> bytes:
    """PNG bytes: a disc of `background` with the first letter of `text` in `foreground`."""
    img = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((0, 0, SIZE - 1, SIZE - 1), fill=(*rgb_tuple(background), 255))
    letter = next((ch for ch in text if ch.isalnum()), "")
    font = _font(SIZE // 2)
    if letter and font.getbbox(letter.upper())[2] > 0:
        draw.text(
            (SIZE / 2, SIZE / 2), letter.upper(), font=font, fill=(*rgb_tuple(foreground), 255), anchor="mm"
        )
    else:  # nothing to write: a cup
        fg = (*rgb_tuple(foreground), 255)
        draw.rounded_rectangle((190, 230, 410, 450), radius=40, fill=fg)
        draw.arc((370, 270, 480, 390), start=-90, end=90, fill=fg, width=28)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()
