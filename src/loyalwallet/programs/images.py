"""Card images rendered from a program's design, shared by every wallet.

Apple wants icon, logo and strip at @1x/@2x/@3x; Google and the web card want one
large image by URL. Everything here is drawn with Pillow from the design (colours, the
uploaded logo/icon/strip assets, the stamp style) and, for a stamp card, the current
count: filled cups for the stamps collected, empty ones for the rest.

Rendering is deterministic, so images are cached by what they are drawn from:
- in this process, a byte-bounded LRU keyed by the drawing inputs (the pass hot path
  never renders twice);
- in the database, `publish()` stores a rendered image as an asset addressed by the
  SHA-256 of its bytes (programs/assets.py), which is what Google Wallet and the web
  card link to (`image_url()`).

Public API (pure, no database): `icon()`, `logo()`, `strip()` -> `Rendered`.
With a session: `card_images()` (every file a pass needs), `strip_for()`,
`image_url()`, `publish()`.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageDraw, ImageOps
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.programs.design import CardDesign, Colours, look_for_tier, rgb_tuple
from loyalwallet.programs.models import Asset
from loyalwallet.programs.rules import StampRules, held_by_kind, stamps_to_collect

# Sizes in points (Apple's storeCard/coupon layout); files are drawn at @1x/@2x/@3x.
ICON_PT = (29, 29)
LOGO_PT = (160, 50)
LOGO_MARK_PT = (50, 50)  # the generated logo: a square mark next to the logo text
STRIP_PT = {"store": (375, 123), "coupon": (375, 144)}
SCALES = (1, 2, 3)
Kind = Literal["icon", "logo", "strip"]
SUPERSAMPLE = 2  # shapes are drawn larger and scaled down: Pillow does not anti-alias


@dataclass(frozen=True)
class Source:
    """An uploaded image to draw from, with the SHA-256 it is cached under."""

    sha256: str
    data: bytes

    @classmethod
    def of(cls, data: bytes) -> Source:
        return cls(hashlib.sha256(data).hexdigest(), data)


@dataclass(frozen=True)
class Rendered:
    data: bytes  # PNG
    width: int
    height: int
    sha1: str  # what a pkpass manifest lists
    sha256: str  # the asset address

    content_type = "image/png"


def _rendered(img: Image.Image) -> Rendered:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=6)
    data = buf.getvalue()
    return Rendered(
        data, img.width, img.height, hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest()
    )


# --- the in-process cache ----------------------------------------------------------------


class _LRU:
    """Rendered images by drawing inputs, bounded by total bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[Any, ...], Rendered] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.renders = 0  # how many times something was actually drawn (tests look)

    def get_or_render(self, key: tuple[Any, ...], render: Callable[[], Rendered]) -> Rendered:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        value = render()  # outside the lock: two threads may both draw, same result
        with self._lock:
            self.renders += 1
            if key not in self._items:
                self._items[key] = value
                self._bytes += len(value.data)
                while self._bytes > self.max_bytes and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= len(old.data)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


CACHE = _LRU(64 * 1024 * 1024)
_sources: OrderedDict[tuple[int, str], Source] = OrderedDict()
_sources_lock = threading.Lock()


# --- drawing -------------------------------------------------------------------------------


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    """factor > 0 lightens towards white, < 0 darkens towards black."""
    if factor >= 0:
        r, g, b = (round(c + (255 - c) * factor) for c in rgb)
        return (r, g, b)
    r, g, b = (round(c * (1 + factor)) for c in rgb)
    return (r, g, b)


def _gradient(size: tuple[int, int], colour: tuple[int, int, int]) -> Image.Image:
    """A soft vertical gradient around the background colour."""
    top = Image.new("RGBA", size, (*_shade(colour, 0.12), 255))
    bottom = Image.new("RGBA", size, (*_shade(colour, -0.18), 255))
    mask = Image.linear_gradient("L").resize(size)
    return Image.composite(bottom, top, mask)


def _open(source: Source) -> Image.Image:
    img: Image.Image = Image.open(io.BytesIO(source.data))
    img = ImageOps.exif_transpose(img)
    return img.convert("RGBA")


def _cup(
    draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], colour: Any, filled: bool
) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    line = max(1, round(w * 0.07))
    body = [
        (x0 + 0.12 * w, y0 + 0.30 * h),
        (x0 + 0.70 * w, y0 + 0.30 * h),
        (x0 + 0.64 * w, y0 + 0.82 * h),
        (x0 + 0.18 * w, y0 + 0.82 * h),
    ]
    handle = (x0 + 0.58 * w, y0 + 0.40 * h, x0 + 0.90 * w, y0 + 0.66 * h)
    saucer = (x0 + 0.04 * w, y0 + 0.84 * h, x0 + 0.86 * w, y0 + 0.94 * h)
    draw.ellipse(handle, outline=colour, width=line)
    if filled:
        draw.polygon(body, fill=colour)
        draw.ellipse(saucer, fill=colour)
        for i in range(3):  # steam
            sx = x0 + (0.26 + 0.14 * i) * w
            draw.line([(sx, y0 + 0.08 * h), (sx, y0 + 0.22 * h)], fill=colour, width=line)
    else:
        draw.polygon(body, outline=colour, width=line)
        draw.ellipse(saucer, outline=colour, width=line)


def _star(
    draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], colour: Any, filled: bool
) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2 + (y1 - y0) * 0.03, (x1 - x0) * 0.47
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    if filled:
        draw.polygon(points, fill=colour)
    else:
        draw.polygon(points, outline=colour, width=max(1, round((x1 - x0) * 0.06)))


def _circle(
    draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], colour: Any, filled: bool
) -> None:
    x0, y0, x1, y1 = box
    pad = (x1 - x0) * 0.08
    inner = (x0 + pad, y0 + pad, x1 - pad, y1 - pad)
    if filled:
        draw.ellipse(inner, fill=colour)
    else:
        draw.ellipse(inner, outline=colour, width=max(1, round((x1 - x0) * 0.07)))


MARKS = {"cup": _cup, "star": _star, "circle": _circle}


def _mark_image(
    size: tuple[int, int], style: str, colour: tuple[int, int, int], background: Any
) -> Image.Image:
    big = (size[0] * 4, size[1] * 4)
    img = Image.new("RGBA", big, background)
    draw = ImageDraw.Draw(img)
    side = min(big) * 0.78
    x0, y0 = (big[0] - side) / 2, (big[1] - side) / 2
    MARKS.get(style, _cup)(draw, (x0, y0, x0 + side, y0 + side), (*colour, 255), True)
    return img.resize(size, Image.Resampling.LANCZOS)


# The marks of a stamp strip: one count (a card's one kind), or one per stamp kind of a
# card with several (each drawn in its own band of the strip, kind 1 at the top).
Marks = int | tuple[int, ...] | None


def _kind_bands(
    img: Image.Image, style: str, colours: Colours, stamps: tuple[int, ...], required: tuple[int, ...]
) -> Image.Image:
    w, h = img.size
    n = len(required)
    for i, (have, cells) in enumerate(zip(stamps, required, strict=True)):
        box = (0, h * i // n, w, h * (i + 1) // n)
        img.paste(_stamps(img.crop(box), style, colours, have, cells), box[:2])
    return img


def _grid(n: int, width: float, height: float) -> tuple[int, int]:
    """Columns and rows that give the largest marks for n marks in width×height."""
    best = (n, 1)
    best_side = 0.0
    for rows in range(1, n + 1):
        cols = math.ceil(n / rows)
        side = min(width / cols, height / rows)
        if side > best_side:
            best, best_side = (cols, rows), side
    return best


def _stamps(img: Image.Image, style: str, colours: Colours, stamps: int, required: int) -> Image.Image:
    w, h = img.size
    big = Image.new("RGBA", (w * SUPERSAMPLE, h * SUPERSAMPLE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)
    bw, bh = big.size
    margin_x, margin_y = bw * 0.05, bh * 0.12
    cols, rows = _grid(required, bw - 2 * margin_x, bh - 2 * margin_y)
    cell = min((bw - 2 * margin_x) / cols, (bh - 2 * margin_y) / rows)
    start_x = (bw - cols * cell) / 2
    start_y = (bh - rows * cell) / 2
    full = (*rgb_tuple(colours.foreground), 255)
    empty = (*rgb_tuple(colours.label), 150)
    shown = max(0, min(stamps, required))
    for i in range(required):
        row, col = divmod(i, cols)
        # Centre a short last row.
        in_row = cols if row < rows - 1 else required - cols * (rows - 1)
        offset = (cols - in_row) * cell / 2
        x = start_x + offset + col * cell + cell * 0.1
        y = start_y + row * cell + cell * 0.1
        MARKS.get(style, _cup)(
            draw, (x, y, x + cell * 0.8, y + cell * 0.8), full if i < shown else empty, i < shown
        )
    overlay = big.resize((w, h), Image.Resampling.LANCZOS)
    return Image.alpha_composite(img, overlay)


def _draw_icon(colours: Colours, style: str, scale: int, source: Source | None) -> Rendered:
    size = (ICON_PT[0] * scale, ICON_PT[1] * scale)
    if source:
        img = ImageOps.pad(_open(source), size, Image.Resampling.LANCZOS, color=(0, 0, 0, 0))
        return _rendered(img)
    return _rendered(
        _mark_image(size, style, rgb_tuple(colours.foreground), (*rgb_tuple(colours.background), 255))
    )


def _draw_logo(colours: Colours, style: str, scale: int, source: Source | None) -> Rendered:
    if source:
        img = _open(source)
        box = (LOGO_PT[0] * scale, LOGO_PT[1] * scale)
        img = ImageOps.contain(img, box, Image.Resampling.LANCZOS)
        return _rendered(img)
    size = (LOGO_MARK_PT[0] * scale, LOGO_MARK_PT[1] * scale)
    return _rendered(_mark_image(size, style, rgb_tuple(colours.foreground), (0, 0, 0, 0)))


def _draw_strip(
    colours: Colours,
    style: str,
    scale: int,
    source: Source | None,
    stamps: Marks,
    required: Marks,
    coupon: bool,
) -> Rendered:
    pt = STRIP_PT["coupon" if coupon else "store"]
    size = (pt[0] * scale, pt[1] * scale)
    if source:
        img = ImageOps.fit(_open(source), size, Image.Resampling.LANCZOS)
        if required:
            # Darken a photo so the cups stay readable on it.
            img = Image.alpha_composite(img, Image.new("RGBA", size, (0, 0, 0, 110)))
    else:
        img = _gradient(size, rgb_tuple(colours.background))
    if isinstance(required, tuple) and isinstance(stamps, tuple):
        img = _kind_bands(img, style, colours, stamps, required)
    elif isinstance(required, int) and required:
        img = _stamps(img, style, colours, stamps if isinstance(stamps, int) else 0, required)
    return _rendered(img.convert("RGB") if not source or required else img)


def _colours_key(colours: Colours) -> tuple[str, str, str]:
    return (colours.background, colours.foreground, colours.label)


def icon(
    design: CardDesign, scale: int, *, colours: Colours | None = None, source: Source | None = None
) -> Rendered:
    """The pass icon (lock screen, notifications): 29×29 pt at `scale`."""
    colours = colours or design.colours
    key = ("icon", scale, _colours_key(colours), design.stamp_style, (source.sha256 if source else None))
    return CACHE.get_or_render(key, lambda: _draw_icon(colours, design.stamp_style, scale, source))


def logo(
    design: CardDesign, scale: int, *, colours: Colours | None = None, source: Source | None = None
) -> Rendered:
    """The logo at the top left: the uploaded one fitted in 160×50 pt, else a mark."""
    colours = colours or design.colours
    key = ("logo", scale, _colours_key(colours), design.stamp_style, (source.sha256 if source else None))
    return CACHE.get_or_render(key, lambda: _draw_logo(colours, design.stamp_style, scale, source))


def strip(
    design: CardDesign,
    scale: int,
    *,
    colours: Colours | None = None,
    source: Source | None = None,
    stamps: Marks = None,
    required: Marks = None,
    coupon: bool = False,
) -> Rendered:
    """The wide image behind the front fields (375×123 pt; 375×144 pt for coupons). With
    `required`, a stamp card: `stamps` filled marks and the rest empty."""
    colours = colours or design.colours
    if isinstance(required, tuple):
        held = stamps if isinstance(stamps, tuple) else (0,) * len(required)
        stamps = tuple(max(0, min(s, r)) for s, r in zip(held, required, strict=True))
    elif required is not None:
        stamps = max(0, min(stamps if isinstance(stamps, int) else 0, required))
    key = (
        "strip",
        scale,
        _colours_key(colours),
        design.stamp_style,
        (source.sha256 if source else None),
        stamps,
        required,
        coupon,
    )
    return CACHE.get_or_render(
        key, lambda: _draw_strip(colours, design.stamp_style, scale, source, stamps, required, coupon)
    )


# --- with the database ---------------------------------------------------------------------


def source_bytes(session: Session, merchant_id: int, sha: str | None) -> Source | None:
    """An uploaded design image by its SHA-256 (cached: content-addressed, immutable)."""
    if not sha:
        return None
    key = (merchant_id, sha)
    with _sources_lock:
        hit = _sources.get(key)
        if hit is not None:
            _sources.move_to_end(key)
            return hit
    data = session.scalar(select(Asset.data).where(Asset.merchant_id == merchant_id, Asset.sha256 == sha))
    if data is None:
        return None
    source = Source(sha, data)
    with _sources_lock:
        _sources[key] = source
        while len(_sources) > 256:
            _sources.popitem(last=False)
    return source


def card_images(
    session: Session,
    merchant_id: int,
    design: CardDesign,
    *,
    tier: str | None = None,
    stamps: Marks = None,
    required: Marks = None,
    coupon: bool = False,
) -> dict[str, Rendered]:
    """Every image file of a pass: icon, logo and strip at @1x/@2x/@3x, named as Apple
    wants them (icon.png, icon@2x.png, ...)."""
    colours, strip_sha = look_for_tier(design, tier)
    icon_src = source_bytes(session, merchant_id, design.images.icon)
    logo_src = source_bytes(session, merchant_id, design.images.logo)
    strip_src = source_bytes(session, merchant_id, strip_sha)
    files: dict[str, Rendered] = {}
    for scale in SCALES:
        suffix = "" if scale == 1 else f"@{scale}x"
        files[f"icon{suffix}.png"] = icon(design, scale, colours=colours, source=icon_src or logo_src)
        files[f"logo{suffix}.png"] = logo(design, scale, colours=colours, source=logo_src)
        files[f"strip{suffix}.png"] = strip(
            design, scale, colours=colours, source=strip_src, stamps=stamps, required=required, coupon=coupon
        )
    return files


def render(
    session: Session,
    merchant_id: int,
    design: CardDesign,
    kind: Kind,
    *,
    scale: int = 3,
    tier: str | None = None,
    stamps: Marks = None,
    required: Marks = None,
    coupon: bool = False,
) -> Rendered:
    """One image of a card (Google Wallet's logo and hero image, the web card)."""
    colours, strip_sha = look_for_tier(design, tier)
    if kind == "icon":
        src = source_bytes(session, merchant_id, design.images.icon or design.images.logo)
        return icon(design, scale, colours=colours, source=src)
    if kind == "logo":
        return logo(
            design, scale, colours=colours, source=source_bytes(session, merchant_id, design.images.logo)
        )
    return strip(
        design,
        scale,
        colours=colours,
        source=source_bytes(session, merchant_id, strip_sha),
        stamps=stamps,
        required=required,
        coupon=coupon,
    )


def strip_for(session: Session, program: Any, card: Any | None = None, *, scale: int = 3) -> Rendered:
    """The strip of a program's card (its tier's look, its stamps) or of a new card."""
    from loyalwallet.programs.design import parse_design

    design = parse_design(program.design)
    # A stamp card's cells are the paid stamps (stamps_required - 1; see StampRules).
    required: Marks = (
        stamps_to_collect(int(program.rules["stamps_required"])) if program.kind == "stamp" else None
    )
    stamps: Marks = (card.stamps if card is not None else 0) if required else None
    if program.kind == "stamp" and program.rules.get("kinds"):
        # Several stamp kinds: a band per kind.
        held = held_by_kind(
            StampRules.model_validate(program.rules),
            card.stamps if card is not None else 0,
            getattr(card, "kind_stamps", None),
        )
        stamps, required = tuple(h for _n, h, _c in held), tuple(c for _n, _h, c in held)
    return render(
        session,
        program.merchant_id,
        design,
        "strip",
        scale=scale,
        tier=card.tier if card is not None else None,
        stamps=stamps,
        required=required,
    )


def publish(session: Session, merchant_id: int, image: Rendered) -> str:
    """Store a rendered image as an asset (once per merchant) and return its SHA-256."""
    from sqlalchemy.exc import IntegrityError

    from loyalwallet.programs import assets

    try:
        with session.begin_nested():  # another server may store the same bytes at once
            assets.store(session, merchant_id, image.data)
    except IntegrityError:
        pass
    return image.sha256


def image_url(session: Session, merchant_id: int, design: CardDesign, kind: Kind, **kw: Any) -> str:
    """A public, cache-forever URL of a card image (stored in the database on first use)."""
    from loyalwallet.programs import assets

    image = render(session, merchant_id, design, kind, **kw)
    return assets.url(merchant_id, publish(session, merchant_id, image))
