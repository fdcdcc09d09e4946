"""The look of a program's cards, shared by Apple Wallet, Google Wallet and the web card.

Stored in `programs.design` (JSON) and validated here. Colours are "#rrggbb" (Apple
needs "rgb(r, g, b)": see `rgb()`); images are assets referenced by their SHA-256.
A tier may override colours and the strip image (the card changes look with the tier).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loyalwallet.errors import DomainError

HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, Field(max_length=500)]


def _colour(value: str) -> str:
    if not HEX.match(value):
        raise ValueError("colours are #rrggbb")
    return value.lower()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Colours(_Model):
    background: str = "#3b2a20"
    foreground: str = "#ffffff"
    label: str = "#f3d9b1"

    _check = field_validator("background", "foreground", "label")(_colour)


class Images(_Model):
    logo: Sha | None = None
    icon: Sha | None = None
    strip: Sha | None = None


class Location(_Model):
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    relevant_text: Annotated[str, Field(max_length=200)] = ""


class Link(_Model):
    label: Annotated[str, Field(min_length=1, max_length=100)]
    url: Annotated[str, Field(pattern=r"^(https?://|tel:|mailto:)", max_length=500)]


FrontField = Literal["balance", "tier", "discount", "stamps", "holder", "next_tier", "rewards"]


class TierLook(_Model):
    colours: Colours | None = None
    strip: Sha | None = None


class CardDesign(_Model):
    logo_text: Annotated[str, Field(max_length=40)] = ""
    colours: Colours = Colours()
    images: Images = Images()
    front_fields: Annotated[list[FrontField], Field(max_length=6)] = ["balance", "tier", "holder"]
    terms: Text = ""
    address: Text = ""
    phone: Annotated[str, Field(max_length=40)] = ""
    links: Annotated[list[Link], Field(max_length=5)] = []
    barcode: Literal["qr", "pdf417", "aztec", "code128"] = "qr"
    locations: Annotated[list[Location], Field(max_length=10)] = []
    tiers: dict[str, TierLook] = {}
    # A stamp card's strip is drawn from these two: a filled and an empty cup.
    stamp_style: Literal["cup", "star", "circle"] = "cup"


# A new programme's front fields show what its cards count: stamps, not points or tier.
DEFAULT_FRONT_FIELDS: dict[str, list[str]] = {
    "stamp": ["stamps", "rewards", "holder"],
    "discount": ["discount", "tier", "holder"],
}


def default_design(kind: str, design: dict[str, Any] | None) -> dict[str, Any]:
    """The design a new programme of `kind` starts with: the given one, with the kind's
    front fields unless it names its own."""
    out = dict(design or {})
    if "front_fields" not in out and kind in DEFAULT_FRONT_FIELDS:
        out["front_fields"] = list(DEFAULT_FRONT_FIELDS[kind])
    return out


def parse_design(raw: dict[str, Any] | None) -> CardDesign:
    try:
        return CardDesign.model_validate(raw or {})
    except ValidationError as exc:
        errors = [
            {"loc": ["design", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise DomainError("validation_error", "the card design is not valid", errors=errors) from None


def look_for_tier(design: CardDesign, tier: str | None) -> tuple[Colours, str | None]:
    """Colours and strip image for a card in `tier` (the tier's override wins)."""
    override = design.tiers.get(tier or "")
    colours = override.colours if override and override.colours else design.colours
    strip = override.strip if override and override.strip else design.images.strip
    return colours, strip


def rgb_tuple(hex_colour: str) -> tuple[int, int, int]:
    """ "#3b2a20" -> (59, 42, 32): the one parser of colours, for drawing and for Apple."""
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def rgb(hex_colour: str) -> str:
    """ "#3b2a20" -> "rgb(59, 42, 32)" (the form Apple's pass.json takes)."""
    r, g, b = rgb_tuple(hex_colour)
    return f"rgb({r}, {g}, {b})"
