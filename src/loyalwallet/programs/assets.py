"""Images of card designs, stored in the database and served by their SHA-256.

Content addressing makes them cache forever: a changed image is a new hash, a new URL.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.config import get_settings
from loyalwallet.errors import DomainError
from loyalwallet.programs.models import Asset

MAX_BYTES = 5 * 1024 * 1024
# A card image is drawn small (Apple's strip is 1125 x 432); a bigger one costs seconds
# and hundreds of MB on every pass build. 16.7 Mpx is a photo straight off a phone.
MAX_PIXELS = 4096 * 4096
TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def store(session: Session, merchant_id: int, data: bytes) -> Asset:
    """Store an image (PNG, JPEG or WebP, ≤ 5 MB); the same bytes are stored once."""
    if len(data) > MAX_BYTES:
        raise DomainError(
            "image_too_large", "the image is larger than 5 MB", field="image", max_bytes=MAX_BYTES
        )
    too_many_pixels = DomainError(
        "image_too_large",
        "the image is larger than 4096 x 4096 pixels",
        field="image",
        max_pixels=MAX_PIXELS,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        with img:
            fmt, (width, height) = img.format, img.size
            if width * height > MAX_PIXELS:
                raise too_many_pixels
            img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise DomainError(
            "validation_error", "the file is not a PNG, JPEG or WebP image", field="image"
        ) from None
    if fmt not in TYPES:
        raise DomainError("validation_error", "the image must be PNG, JPEG or WebP", field="image")
    sha = hashlib.sha256(data).hexdigest()
    existing = session.scalar(select(Asset).where(Asset.merchant_id == merchant_id, Asset.sha256 == sha))
    if existing is not None:
        return existing
    asset = Asset(
        merchant_id=merchant_id, sha256=sha, content_type=TYPES[fmt], data=data, width=width, height=height
    )
    session.add(asset)
    session.flush()
    return asset


def load(session: Session, merchant_id: int, sha: str) -> Asset | None:
    return session.scalar(select(Asset).where(Asset.merchant_id == merchant_id, Asset.sha256 == sha))


def url(merchant_id: int, sha: str) -> str:
    """Public URL of an asset (Google Wallet fetches images from here)."""
    return f"{get_settings().base_url}/assets/{merchant_id}/{sha}"


def stamp_strip_url(program: Any, stamps: int, kind_stamps: list[int] | None = None) -> str:
    """Public URL of a stamp card's strip with `stamps` filled (see api.py); a card with
    several stamp kinds adds the stamps of kinds 2..4 (?kinds=3-0)."""
    base = get_settings().base_url
    path = f"{base}/assets/{program.merchant_id}/programs/{program.id}/v{program.version}/stamps/{stamps}.png"
    return path + ("?kinds=" + "-".join(map(str, kind_stamps)) if kind_stamps else "")
