"""loyaltyClass and loyaltyObject JSON, built from a program, its design and a card.

Pure: the caller gathers the facts (ProgramFacts, CardFacts) and image URLs.

Where things live (Google shows class and object modules together):
- the class carries what is the same for every card of a program and look: name,
  logo, colour, hero image, terms, address, phone, links and locations (the Apple back
  fields). A design change is one class patch, and save links stay short (Google's
  web save links are safe up to about 1800 characters);
- the object carries the card: points or stamps, tier or discount, holder, code as a
  QR, its hero image, the card's own rewards, the next tier, a link to the web card.

Tier looks: Google has no per-object background colour (hexBackgroundColor exists on
the class only), so a tier whose look differs in the design (design.tiers) gets a
class of its own ("variant"); a card moves to its tier's class when its tier changes.
Tiers without a look of their own share the program's base class.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from loyalwallet.programs.design import CardDesign, look_for_tier
from loyalwallet.programs.rules import (
    BonusRules,
    DiscountRules,
    IikoRules,
    Rules,
    StampRules,
    held_by_kind,
    next_tier,
    stamp_kinds_line,
    stamp_terms,
)
from loyalwallet.text import money, translate_with

Gettext = Callable[[str], str]
BARCODES = {"qr": "QR_CODE", "pdf417": "PDF_417", "aztec": "AZTEC", "code128": "CODE_128"}
BASE = "base"
# Optional fields we manage on objects: a PATCH sends them as null when absent, so a
# value that disappeared (no more rewards, no hero image) is cleared at Google too.
OBJECT_OPTIONAL = ("accountName", "secondaryLoyaltyPoints", "heroImage", "textModulesData")
CLASS_OPTIONAL = (
    "heroImage",
    "rewardsTier",
    "rewardsTierLabel",
    "textModulesData",
    "linksModuleData",
    "merchantLocations",
)


@dataclass(frozen=True)
class ProgramFacts:
    id: int
    merchant_id: int
    kind: str
    name: str
    issuer_name: str  # the merchant's name
    currency: str
    rules: Rules
    design: CardDesign
    language: str = "ru"


@dataclass(frozen=True)
class CardFacts:
    code: str
    serial: str
    holder: str | None  # None for an anonymous invitation card
    status: str
    balance: int
    stamps: int
    tier: str | None
    spend: int
    rewards: tuple[str, ...]  # names of the rewards waiting on the card
    web_url: str
    # URL of a picture of this card's own state (a stamp card's cups).
    hero: str | None = None
    # (id, header, body) lines other parts add (a subscription: "Left: 12 · until ...").
    notes: tuple[tuple[str, str, str], ...] = ()
    # Stamps of kinds 2..4 of a card with several stamp kinds ({"2": n}, as on the card).
    kind_stamps: dict[str, Any] | None = None


# --- ids ---------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def variant_for(design: CardDesign, tier: str | None) -> str:
    """The class variant a card in `tier` uses: the tier's own when its look differs."""
    look = design.tiers.get(tier or "")
    if tier and look is not None and (look.colours is not None or look.strip is not None):
        return "t" + _slug(tier)
    return BASE


def variants(design: CardDesign, rules: Rules) -> dict[str, str | None]:
    """Every class variant of a program: {variant: tier name or None for the base}."""
    out: dict[str, str | None] = {BASE: None}
    if isinstance(rules, (BonusRules, DiscountRules)):
        for tier in rules.tiers:
            variant = variant_for(design, tier.name)
            if variant != BASE:
                out[variant] = tier.name
    return out


def class_id(issuer_id: str, prefix: str, merchant_id: int, program_id: int, variant: str) -> str:
    suffix = f"{prefix}-m{merchant_id}-p{program_id}"
    return f"{issuer_id}.{suffix}" if variant == BASE else f"{issuer_id}.{suffix}-{variant}"


def object_id(issuer_id: str, prefix: str, card_serial: str) -> str:
    # The card's random serial: the id is visible in save links, so it must not count cards.
    return f"{issuer_id}.{prefix}-c{card_serial}"


# --- pieces ------------------------------------------------------------------------------


def _image(uri: str, description: str, language: str) -> dict[str, Any]:
    return {
        "sourceUri": {"uri": uri},
        "contentDescription": {"defaultValue": {"language": language, "value": description}},
    }


def _percent(pct: Decimal) -> str:
    text = f"{pct.normalize():f}"
    return f"{text}%"


def _points(label: str, value: int | str) -> dict[str, Any]:
    balance = {"int": value} if isinstance(value, int) else {"string": value}
    return {"label": label, "balance": balance}


def content_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# --- the class ---------------------------------------------------------------------------


def loyalty_class(
    cid: str,
    program: ProgramFacts,
    tier: str | None,
    logo_url: str,
    image_url: Callable[[str], str],
    _: Gettext,
) -> dict[str, Any]:
    """The loyaltyClass of a program (tier None) or of a tier with a look of its own."""
    design = program.design
    colours, strip = look_for_tier(design, tier)
    lang = program.language
    body: dict[str, Any] = {
        "id": cid,
        "issuerName": program.issuer_name,
        "programName": program.name,
        "programLogo": _image(logo_url, design.logo_text or program.issuer_name, lang),
        "reviewStatus": "UNDER_REVIEW",  # Google approves issuer classes at once; keep it on updates
        "hexBackgroundColor": colours.background,
        "accountIdLabel": _("Card number"),
        "accountNameLabel": _("Holder"),
    }
    if strip:
        body["heroImage"] = _image(image_url(strip), program.name, lang)
    if tier:
        body["rewardsTierLabel"] = _("Tier")
        body["rewardsTier"] = tier
    modules = []
    if design.terms:
        modules.append({"id": "terms", "header": _("Terms"), "body": design.terms})
    if design.address:
        modules.append({"id": "address", "header": _("Address"), "body": design.address})
    if modules:
        body["textModulesData"] = modules
    uris = []
    if design.phone:
        phone = "".join(ch for ch in design.phone if ch.isdigit() or ch == "+")
        uris.append({"id": "phone", "uri": f"tel:{phone}", "description": design.phone})
    for n, link in enumerate(design.links):
        uris.append({"id": f"link{n}", "uri": link.url, "description": link.label})
    if uris:
        body["linksModuleData"] = {"uris": uris}
    if design.locations:
        body["merchantLocations"] = [
            {"latitude": loc.latitude, "longitude": loc.longitude} for loc in design.locations[:10]
        ]
    return body


# --- the object --------------------------------------------------------------------------


def loyalty_object(
    oid: str,
    cid: str,
    program: ProgramFacts,
    card: CardFacts,
    image_url: Callable[[str], str],
    _: Gettext,
) -> dict[str, Any]:
    """The loyaltyObject of a card."""
    rules = program.rules
    design = program.design
    body: dict[str, Any] = {
        "id": oid,
        "classId": cid,
        "state": "ACTIVE" if card.status == "active" else "INACTIVE",
        "accountId": card.code,
        "barcode": {"type": BARCODES[design.barcode], "value": card.code, "alternateText": card.code},
    }
    if card.holder:
        body["accountName"] = card.holder
    modules: list[dict[str, str]] = []
    if isinstance(rules, StampRules):
        # stamps_required = N: N - 1 stamps fill the card, the N-th visit is the reward.
        body["loyaltyPoints"] = _points(_("Stamps"), f"{card.stamps}/{rules.stamps_to_collect}")
        if card.rewards:
            body["secondaryLoyaltyPoints"] = _points(_("Rewards"), len(card.rewards))
        if rules.multi_kind:
            # Several stamp kinds: the first two by name in the two figures, all on one line.
            kinds = held_by_kind(rules, card.stamps, card.kind_stamps)
            body["loyaltyPoints"] = _points(kinds[0][0], f"{kinds[0][1]}/{kinds[0][2]}")
            body["secondaryLoyaltyPoints"] = _points(kinds[1][0], f"{kinds[1][1]}/{kinds[1][2]}")
            modules.append({"id": "stamp_kinds", "header": _("Stamps"), "body": stamp_kinds_line(kinds)})
        terms, params = stamp_terms(rules)
        modules.append(
            {"id": "stamp_terms", "header": _("How it works"), "body": translate_with(_, terms, params)}
        )
    elif isinstance(rules, DiscountRules):
        tier = next((t for t in rules.tiers if t.name == card.tier), rules.tiers[0])
        body["loyaltyPoints"] = _points(_("Discount"), _percent(tier.discount_pct))
        if len(rules.tiers) > 1:
            body["secondaryLoyaltyPoints"] = _points(_("Tier"), tier.name)
    else:
        assert isinstance(rules, BonusRules)
        bonus_tier = next((t for t in rules.tiers if t.name == card.tier), rules.tiers[0])
        body["loyaltyPoints"] = _points(_("Points"), card.balance)
        if len(rules.tiers) > 1 or isinstance(rules, IikoRules):
            body["secondaryLoyaltyPoints"] = _points(_("Tier"), card.tier or bonus_tier.name)
        else:
            body["secondaryLoyaltyPoints"] = _points(_("Cashback"), _percent(bonus_tier.cashback_pct))
    if isinstance(rules, (BonusRules, DiscountRules)) and not rules.tier_period_days:
        upcoming = next_tier(rules.tiers, card.spend)
        if upcoming is not None:
            needed = money(upcoming.min_spend - card.spend, program.currency, trim_zero_cents=True)
            modules.append(
                {"id": "next_tier", "header": _("Next tier"), "body": f"{upcoming.name}: {needed}"}
            )
    if card.rewards:
        modules.append({"id": "rewards", "header": _("Rewards"), "body": "\n".join(card.rewards)})
    modules += [{"id": key, "header": header, "body": text} for key, header, text in card.notes]
    if modules:
        body["textModulesData"] = modules
    _colours, strip = look_for_tier(design, card.tier)
    url = card.hero or (image_url(strip) if strip else None)
    if url:
        body["heroImage"] = _image(url, program.name, program.language)
    body["linksModuleData"] = {
        "uris": [{"id": "card", "uri": card.web_url, "description": _("Your card online")}]
    }
    return body


def patch_body(body: dict[str, Any], optional: tuple[str, ...]) -> dict[str, Any]:
    """The body for a PATCH: managed optional fields that are absent become null."""
    return {**{key: None for key in optional if key not in body}, **body}
