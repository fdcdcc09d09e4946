"""What a pass shows: a card (storeCard style) or a coupon (coupon style) → pass.json.

Pure: takes facts already loaded and formatted by service.py, returns the pass.json
dict. `problems()` checks a pass against Apple's rules (tests run it on every pass).

Labels are English; they are keys of the pass's own localisation (`ru.lproj/pass.strings`
and `en.lproj/pass.strings`, see `STRINGS`), so the guest's iPhone shows them in its
language. Values the merchant typed (program, tier and reward names) are shown as typed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from loyalwallet.programs.design import CardDesign, Colours, rgb
from loyalwallet.programs.rules import stamp_kinds_line, stamps_to_collect

BARCODE_FORMATS = {
    "qr": "PKBarcodeFormatQR",
    "pdf417": "PKBarcodeFormatPDF417",
    "aztec": "PKBarcodeFormatAztec",
    "code128": "PKBarcodeFormatCode128",
}
MAX_LOCATIONS = 10
HEADER_MAX, PRIMARY_MAX, SECONDARY_AUX_MAX = 3, 1, 4

# Every text the pass itself shows, translated through pass.strings.
L_POINTS = "Points"
L_STAMPS = "Stamps"
L_LEVEL = "Level"
L_DISCOUNT = "Discount"
L_CASHBACK = "Cashback"
L_MEMBER = "Member"
L_NEXT = "Next level"
L_REWARDS = "Rewards"
L_NEWS = "News"
L_NO_NEWS = "No news yet"
L_YOUR_REWARDS = "Your rewards"
L_CODE = "Card number"
L_PROGRAM = "Program"
L_TERMS = "Terms"
L_ADDRESS = "Address"
L_PHONE = "Phone"
L_ONLINE = "Your card online"
L_VALID_UNTIL = "Valid until"
L_MIN_CHECK = "Minimum check"
L_USES_LEFT = "Uses left"
L_STATUS = "Status"
L_COUPON_CODE = "Coupon code"
L_AVAILABLE = "Available"
L_USED = "Used"
L_EXPIRED = "Expired"
L_GIFT = "Gift"
L_HOW = "How it works"
L_BALANCE = "Balance"
L_GIFT_CERTIFICATE = "Gift certificate"
L_CERTIFICATE_CODE = "Certificate code"
L_CANCELLED = "Cancelled"
C_POINTS = "You have %@ points"
C_STAMPS = "Stamps: %@"
C_LEVEL = "Your level is now %@"
C_DISCOUNT = "Your discount is now %@"
C_CASHBACK = "Your cashback is now %@"
C_REWARDS = "Rewards available: %@"
C_STATUS = "Coupon: %@"
C_BALANCE = "Balance: %@"
STRINGS = (
    L_BALANCE,
    L_GIFT_CERTIFICATE,
    L_CERTIFICATE_CODE,
    L_CANCELLED,
    C_BALANCE,
    L_POINTS,
    L_STAMPS,
    L_LEVEL,
    L_DISCOUNT,
    L_CASHBACK,
    L_MEMBER,
    L_NEXT,
    L_REWARDS,
    L_NEWS,
    L_NO_NEWS,
    L_YOUR_REWARDS,
    L_CODE,
    L_PROGRAM,
    L_TERMS,
    L_ADDRESS,
    L_PHONE,
    L_ONLINE,
    L_VALID_UNTIL,
    L_MIN_CHECK,
    L_USES_LEFT,
    L_STATUS,
    L_COUPON_CODE,
    L_AVAILABLE,
    L_USED,
    L_EXPIRED,
    L_GIFT,
    L_HOW,
    C_POINTS,
    C_STAMPS,
    C_LEVEL,
    C_DISCOUNT,
    C_CASHBACK,
    C_REWARDS,
    C_STATUS,
)


@dataclass(frozen=True)
class Issuer:
    """Who signs and serves the pass."""

    pass_type_id: str
    team_id: str
    organization: str  # the merchant's name
    web_service_url: str | None  # None: the pass gets no live updates


@dataclass(frozen=True)
class Place:
    latitude: float
    longitude: float
    text: str


@dataclass(frozen=True)
class CardFacts:
    """A loyalty card as the pass shows it; numbers already formatted where shown as text."""

    kind: str  # bonus | discount | stamp
    program_name: str
    serial: str
    auth_token: str
    code: str
    balance: int = 0
    stamps: int = 0
    stamps_required: int | None = None
    tier: str | None = None
    discount: str | None = None  # "10%" (discount programs)
    cashback: str | None = None  # "5%" (bonus programs)
    holder: str | None = None  # None: an anonymous invitation card
    next_tier: str | None = None  # "Gold: 3 500 ₽"
    rewards: tuple[str, ...] = ()
    stamp_terms: str | None = None  # "Paid visits: 5, then on visit 6: Free coffee"
    message: str | None = None
    web_card_url: str | None = None
    places: tuple[Place, ...] = ()
    # (key, label, value) lines other parts add (a subscription: its name, "Left: 12 ·
    # until 31.12.2026"): on the front where there is room, always on the back.
    notes: tuple[tuple[str, str, str], ...] = ()
    # A card with several stamp kinds: (name, stamps held, cells) of each, kind 1 first.
    stamp_kinds: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class CouponFacts:
    serial: str
    auth_token: str
    code: str
    name: str
    offer: str  # "−20%", "−300 ₽", "+100 points", "Free coffee"
    status: str  # available | used | expired | revoked
    valid_until: dt.datetime | None = None
    min_amount: str | None = None
    uses_left: int = 1
    program_name: str | None = None
    personal: bool = False  # bound to a guest's card: not for sharing
    places: tuple[Place, ...] = field(default_factory=tuple)


def _field(key: str, label: str, value: Any, change: str | None = None) -> dict[str, Any]:
    out = {"key": key, "label": label, "value": value}
    if change:
        out["changeMessage"] = change
    return out


def _front(facts: CardFacts, design: CardDesign) -> dict[str, dict[str, Any]]:
    """The front fields this card can show, by design name."""
    out: dict[str, dict[str, Any]] = {}
    if facts.kind in ("bonus", "iiko"):
        out["balance"] = _field("balance", L_POINTS, facts.balance, C_POINTS)
        if facts.cashback:
            out["discount"] = _field("discount", L_CASHBACK, facts.cashback, C_CASHBACK)
    if facts.kind == "discount" and facts.discount:
        out["discount"] = _field("discount", L_DISCOUNT, facts.discount, C_DISCOUNT)
    if facts.kind == "stamp" and facts.stamps_required:
        # stamps_required = N: N - 1 stamps fill the card (see programs.rules.StampRules).
        cells = stamps_to_collect(facts.stamps_required)
        out["stamps"] = _field("stamps", L_STAMPS, f"{facts.stamps}/{cells}", C_STAMPS)
    for n, (name, held, cells) in enumerate(facts.stamp_kinds, start=1):
        # Several stamp kinds: each by its own name (the merchant's words, not translated).
        key = "stamps" if n == 1 else f"stamps_{n}"
        out[key] = _field(key, name, f"{held}/{cells}", f"{name}: %@")
    if facts.tier and facts.kind != "stamp":
        out["tier"] = _field("tier", L_LEVEL, facts.tier, C_LEVEL)
    if facts.holder:
        out["holder"] = _field("holder", L_MEMBER, facts.holder)
    if facts.next_tier:
        out["next_tier"] = _field("next_tier", L_NEXT, facts.next_tier)
    out["rewards"] = _field("rewards", L_REWARDS, len(facts.rewards), C_REWARDS)
    return out


# The figure a guest watches goes in the header: it is what shows when passes are
# stacked in Wallet. The primary field sits on the strip: a stamp card leaves it empty
# so the cups stay visible.
_HEADER = {"bonus": "balance", "discount": "discount", "stamp": "stamps", "iiko": "balance"}
_PRIMARY = {"bonus": "tier", "discount": "tier", "stamp": None, "iiko": "tier"}


def _layout(facts: CardFacts, design: CardDesign) -> dict[str, list[dict[str, Any]]]:
    available = _front(facts, design)
    chosen = [name for name in dict.fromkeys(design.front_fields) if name in available]
    header_name, primary_name = _HEADER[facts.kind], _PRIMARY[facts.kind]
    # The headline figure is always shown: a card without its balance is useless.
    header = [available[header_name]] if header_name in available else []
    primary = [available[primary_name]] if primary_name in chosen else []
    rest = [available[n] for n in chosen if n not in (header_name, primary_name)]
    if facts.kind == "stamp" and "rewards" not in chosen:
        rest.append(available["rewards"])
    # Kinds 2..4 come right after the header's kind 1, before the design's other fields.
    rest = [available[f"stamps_{n}"] for n in range(2, len(facts.stamp_kinds) + 1)] + rest
    rest += [_field(key, label, value, "%@") for key, label, value in facts.notes]
    rest = rest[:SECONDARY_AUX_MAX]
    return {
        "headerFields": header,
        "primaryFields": primary,
        "secondaryFields": rest[:2],
        "auxiliaryFields": rest[2:],
    }


def _contact_fields(design: CardDesign) -> list[dict[str, Any]]:
    out = []
    if design.terms:
        out.append(_field("back_terms", L_TERMS, design.terms))
    if design.address:
        out.append(_field("back_address", L_ADDRESS, design.address))
    if design.phone:
        out.append(_field("back_phone", L_PHONE, design.phone))
    for i, link in enumerate(design.links):
        out.append(_field(f"back_link_{i}", link.label, link.url))
    return out


def _barcodes(code: str, design: CardDesign) -> list[dict[str, Any]]:
    main = {
        "format": BARCODE_FORMATS[design.barcode],
        "message": code,
        "messageEncoding": "iso-8859-1",
        "altText": code,
    }
    if design.barcode == "code128":
        # Apple Watch cannot draw Code 128: the next barcode in the list is its fallback.
        return [main, {**main, "format": BARCODE_FORMATS["qr"]}]
    return [main]


def _common(
    issuer: Issuer, serial: str, auth_token: str, description: str, colours: Colours
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": issuer.pass_type_id,
        "serialNumber": serial,
        "teamIdentifier": issuer.team_id,
        "organizationName": issuer.organization,
        "description": description,
        "backgroundColor": rgb(colours.background),
        "foregroundColor": rgb(colours.foreground),
        "labelColor": rgb(colours.label),
        "suppressStripShine": True,
    }
    if issuer.web_service_url:
        out["webServiceURL"] = issuer.web_service_url
        out["authenticationToken"] = auth_token
    return out


def _locations(places: tuple[Place, ...]) -> list[dict[str, Any]]:
    out = []
    for p in places[:MAX_LOCATIONS]:
        loc: dict[str, Any] = {"latitude": p.latitude, "longitude": p.longitude}
        if p.text:
            loc["relevantText"] = p.text
        out.append(loc)
    return out


def store_card(issuer: Issuer, facts: CardFacts, design: CardDesign, colours: Colours) -> dict[str, Any]:
    """pass.json of a loyalty card."""
    layout = _layout(facts, design)
    back = [_field("back_message", L_NEWS, facts.message or L_NO_NEWS, "%@")]
    if facts.rewards:
        back.append(_field("back_rewards", L_YOUR_REWARDS, "\n".join(facts.rewards)))
    if facts.next_tier:
        back.append(_field("back_next_tier", L_NEXT, facts.next_tier))
    if facts.stamp_kinds:
        back.append(_field("back_stamp_kinds", L_STAMPS, stamp_kinds_line(facts.stamp_kinds)))
    if facts.stamp_terms:
        back.append(_field("back_stamp_terms", L_HOW, facts.stamp_terms))
    back += [_field(f"back_{key}", label, value) for key, label, value in facts.notes]
    back.append(_field("back_code", L_CODE, facts.code))
    back.append(_field("back_program", L_PROGRAM, facts.program_name))
    back += _contact_fields(design)
    if facts.web_card_url:
        back.append(_field("back_web", L_ONLINE, facts.web_card_url))
    layout["backFields"] = back
    out = _common(
        issuer, facts.serial, facts.auth_token, f"{facts.program_name} ({issuer.organization})", colours
    )
    out["logoText"] = design.logo_text or issuer.organization
    out["barcodes"] = _barcodes(facts.code, design)
    out["sharingProhibited"] = True  # a loyalty card belongs to one guest
    if facts.places:
        out["locations"] = _locations(facts.places)
    out["storeCard"] = {k: v for k, v in layout.items() if v}
    return out


def coupon(issuer: Issuer, facts: CouponFacts, design: CardDesign, colours: Colours) -> dict[str, Any]:
    """pass.json of a coupon (Apple's coupon style)."""
    state = {"available": L_AVAILABLE, "used": L_USED, "expired": L_EXPIRED}.get(facts.status, L_USED)
    secondary = []
    if facts.valid_until:
        secondary.append(
            {
                **_field(
                    "valid_until",
                    L_VALID_UNTIL,
                    facts.valid_until.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                ),
                "dateStyle": "PKDateStyleMedium",
                "timeStyle": "PKDateStyleNone",
            }
        )
    if facts.min_amount:
        secondary.append(_field("min_amount", L_MIN_CHECK, facts.min_amount))
    body: dict[str, Any] = {
        "headerFields": [_field("uses_left", L_USES_LEFT, facts.uses_left)] if facts.uses_left > 1 else [],
        "primaryFields": [_field("offer", facts.name, facts.offer)],
        "secondaryFields": secondary,
        "auxiliaryFields": [_field("status", L_STATUS, state, C_STATUS)],
        "backFields": [
            _field("back_code", L_COUPON_CODE, facts.code),
            *([_field("back_program", L_PROGRAM, facts.program_name)] if facts.program_name else []),
            *_contact_fields(design),
        ],
    }
    out = _common(issuer, facts.serial, facts.auth_token, f"{facts.name} ({issuer.organization})", colours)
    out["logoText"] = design.logo_text or issuer.organization
    out["barcodes"] = _barcodes(facts.code, design)
    if facts.personal:
        out["sharingProhibited"] = True
    if facts.valid_until:
        out["expirationDate"] = facts.valid_until.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if facts.status != "available":
        out["voided"] = True
    if facts.places:
        out["locations"] = _locations(facts.places)
    out["coupon"] = {k: v for k, v in body.items() if v}
    return out


@dataclass(frozen=True)
class GiftFacts:
    """A gift certificate with a balance as its pass shows it (money already formatted)."""

    serial: str
    auth_token: str
    code: str  # what the till scans
    code_display: str  # GABC-DEFG-...
    balance: str  # "2 500 ₽"
    initial: str  # "3 000 ₽"
    status: str  # active | expired | void
    expires_at: dt.datetime | None = None
    message: str | None = None
    web_url: str | None = None
    places: tuple[Place, ...] = field(default_factory=tuple)


def _date_field(key: str, label: str, value: dt.datetime) -> dict[str, Any]:
    return {
        **_field(key, label, value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
        "dateStyle": "PKDateStyleMedium",
        "timeStyle": "PKDateStyleNone",
    }


def gift_card(issuer: Issuer, facts: GiftFacts, design: CardDesign, colours: Colours) -> dict[str, Any]:
    """pass.json of a gift certificate: Apple's storeCard style, the balance in the header
    (it shows on stacked passes; a change announces itself), the expiry beside it. The
    pass may be given away: it is a bearer gift, not a guest's card."""
    state = {"expired": L_EXPIRED, "void": L_CANCELLED}.get(facts.status)
    secondary = [_date_field("expires", L_VALID_UNTIL, facts.expires_at)] if facts.expires_at else []
    if state:
        secondary.append(_field("status", L_STATUS, state))
    back = []
    if facts.message:
        back.append(_field("back_message", L_GIFT, facts.message))
    back.append(_field("back_code", L_CERTIFICATE_CODE, facts.code_display))
    back += _contact_fields(design)
    if facts.web_url:
        back.append(_field("back_web", L_ONLINE, facts.web_url))
    body = {
        "headerFields": [_field("balance", L_BALANCE, facts.balance, C_BALANCE)],
        "primaryFields": [_field("initial", L_GIFT_CERTIFICATE, facts.initial)],
        "secondaryFields": secondary,
        "backFields": back,
    }
    out = _common(
        issuer, facts.serial, facts.auth_token, f"{L_GIFT_CERTIFICATE} ({issuer.organization})", colours
    )
    out["logoText"] = design.logo_text or issuer.organization
    out["barcodes"] = _barcodes(facts.code, design)
    if facts.expires_at:
        out["expirationDate"] = facts.expires_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if facts.status != "active":
        out["voided"] = True
    if facts.places:
        out["locations"] = _locations(facts.places)
    out["storeCard"] = {k: v for k, v in body.items() if v}
    return out


# --- checks ----------------------------------------------------------------------------------

_RGB = re.compile(r"^rgb\(\d{1,3}, \d{1,3}, \d{1,3}\)$")
_REQUIRED = (
    "formatVersion",
    "passTypeIdentifier",
    "serialNumber",
    "teamIdentifier",
    "organizationName",
    "description",
)
_FIELD_LISTS = ("headerFields", "primaryFields", "secondaryFields", "auxiliaryFields", "backFields")


def problems(pkpass_json: dict[str, Any]) -> list[str]:
    """What is wrong with a pass.json by Apple's rules (empty: nothing)."""
    out: list[str] = []
    p = pkpass_json
    out += [f"missing {k}" for k in _REQUIRED if k not in p]
    if p.get("formatVersion") != 1:
        out.append("formatVersion must be 1")
    if not str(p.get("passTypeIdentifier", "")).startswith("pass."):
        out.append("passTypeIdentifier must start with pass.")
    if ("webServiceURL" in p) != ("authenticationToken" in p):
        out.append("webServiceURL and authenticationToken go together")
    if "authenticationToken" in p and len(p["authenticationToken"]) < 16:
        out.append("authenticationToken must be at least 16 characters")
    styles = [s for s in ("storeCard", "coupon", "generic", "eventTicket", "boardingPass") if s in p]
    if len(styles) != 1:
        return [*out, f"exactly one style expected, got {styles}"]
    body = p[styles[0]]
    keys: list[str] = []
    for name in _FIELD_LISTS:
        for f in body.get(name, []):
            keys.append(f.get("key", ""))
            if "value" not in f:
                out.append(f"field {f.get('key')} has no value")
            if "changeMessage" in f and "%@" not in f["changeMessage"]:
                out.append(f"changeMessage of {f['key']} lacks %@")
            if name in ("primaryFields", "backFields") and "textAlignment" in f:
                out.append(f"{name} must not set textAlignment ({f['key']})")
    if len(keys) != len(set(keys)):
        out.append(f"field keys are not unique: {sorted(k for k in keys if keys.count(k) > 1)}")
    if len(body.get("headerFields", [])) > HEADER_MAX:
        out.append("more than 3 header fields")
    if len(body.get("primaryFields", [])) > PRIMARY_MAX:
        out.append("more than 1 primary field")
    if len(body.get("secondaryFields", [])) + len(body.get("auxiliaryFields", [])) > SECONDARY_AUX_MAX:
        out.append("more than 4 secondary and auxiliary fields")
    for b in p.get("barcodes", []):
        if b.get("format") not in BARCODE_FORMATS.values():
            out.append(f"unknown barcode format {b.get('format')}")
        if b.get("messageEncoding") != "iso-8859-1":
            out.append("barcode messageEncoding must be iso-8859-1")
        try:
            str(b.get("message", "")).encode("iso-8859-1")
        except UnicodeEncodeError:
            out.append("barcode message is not ISO-8859-1")
    if len(p.get("locations", [])) > MAX_LOCATIONS:
        out.append("more than 10 locations")
    for colour in ("backgroundColor", "foregroundColor", "labelColor"):
        if colour in p and not _RGB.match(p[colour]):
            out.append(f"{colour} must be rgb(r, g, b)")
    if "relevantDate" in p and styles[0] == "storeCard":
        out.append("store cards take no relevantDate")
    return out
