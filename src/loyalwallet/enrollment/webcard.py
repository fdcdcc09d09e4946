"""What the public pages show: the program's look and offer, and the web card itself.

Links inside pages are relative (they work whatever host the browser used); links that
leave the browser (QR codes, share links) use the configured base URL.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import crypto
from loyalwallet.cards.models import Card
from loyalwallet.cards.views import card_notes, card_view, ledger_view
from loyalwallet.customers.models import Customer
from loyalwallet.enrollment import rules
from loyalwallet.enrollment.links import join_path
from loyalwallet.enrollment.printing import qr_svg
from loyalwallet.enrollment.referral import referral_pays, referral_url
from loyalwallet.errors import not_found
from loyalwallet.feedback.service import pending_rate_path
from loyalwallet.merchants.models import Location, Merchant
from loyalwallet.programs.design import CardDesign, look_for_tier, parse_design
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import StampRules, held_by_kind, stamp_kinds_line, stamp_terms
from loyalwallet.programs.service import rules_of


def design_of(program: Program) -> CardDesign:
    try:
        return parse_design(program.design)
    except Exception:  # a design stored before validation tightened: show the defaults
        return CardDesign()


def asset_path(merchant_id: int, sha: str | None) -> str | None:
    return f"/assets/{merchant_id}/{sha}" if sha else None


def brand(program: Program, merchant: Merchant, tier: str | None = None) -> dict[str, Any]:
    """Colours, logo and names for a page of this program."""
    design = design_of(program)
    colours, _strip = look_for_tier(design, tier)
    return {
        "background": colours.background,
        "foreground": colours.foreground,
        "label": colours.label,
        "logo_url": asset_path(merchant.id, design.images.logo),
        "logo_text": design.logo_text or merchant.name,
        "merchant_name": merchant.name,
        "program_name": program.name,
        "terms": design.terms,
        "address": design.address,
        "phone": design.phone,
        "links": [link.model_dump() for link in design.links],
    }


def offer(program: Program, settings_offer: str = "") -> dict[str, Any]:
    return {"text": settings_offer, "lines": rules.offer_lines(rules_of(program))}


def load_card(session: Session, public_token: str) -> tuple[Card, Program, Merchant]:
    if not public_token or len(public_token) > 64:
        raise not_found("card")
    row = session.execute(
        select(Card, Program, Merchant)
        .join(Program, Program.id == Card.program_id)
        .join(Merchant, Merchant.id == Card.merchant_id)
        .where(Card.public_token == public_token)
    ).first()
    if row is None:
        raise not_found("card")
    return row[0], row[1], row[2]


def load_card_by_id(session: Session, card_id: int) -> tuple[Card, Program, Merchant]:
    row = session.execute(
        select(Card, Program, Merchant)
        .join(Program, Program.id == Card.program_id)
        .join(Merchant, Merchant.id == Card.merchant_id)
        .where(Card.id == card_id)
    ).first()
    if row is None:
        raise not_found("card")
    return row[0], row[1], row[2]


def first_name(session: Session, card: Card) -> tuple[str | None, str | None]:
    """The holder's name and saved language (the page greets them)."""
    if card.customer_id is None:
        return None, None
    customer = session.get(Customer, card.customer_id)
    if customer is None or customer.erased_at is not None:
        return None, None
    name = crypto.open_(customer.name_enc, merchant_id=customer.merchant_id, column="name")
    return name, customer.locale


# Whether a wallet can take this merchant's cards ("apple": a certificate signs passes,
# "google": an issuer is set, "telegram": the guests' bot is connected); put here by
# wiring.install() (wiring.WALLET_READY).
WALLET_READY: dict[str, Callable[[Session, int], bool]] = {}


def wallet_paths(session: Session, card: Card) -> dict[str, str]:
    """The card's links; a wallet's only when that wallet works for the merchant."""
    paths = {
        "apple": f"/c/{card.public_token}/pass.pkpass",
        "google": f"/c/{card.public_token}/google",
        "web": f"/c/{card.public_token}",
        "telegram": f"/c/{card.public_token}/telegram",
    }
    for name, ready in WALLET_READY.items():
        if not ready(session, card.merchant_id):
            del paths[name]
    return paths


def card_page(session: Session, card: Card, program: Program, merchant: Merchant) -> dict[str, Any]:
    view = card_view(session, card, program, with_customer=False)
    rules_ = rules_of(program)
    tz = zoneinfo.ZoneInfo(merchant.timezone)
    history = [i for i in ledger_view(session, card, 30) if i.get("points") or i.get("stamps")][:20]
    for item in history:
        when = dt.datetime.fromisoformat(item["created_at"]).astimezone(tz)
        item["when"] = when.strftime("%d.%m.%Y %H:%M")
    stamps = None
    if isinstance(rules_, StampRules):
        # stamps_required = N: N - 1 cells to fill, and the N-th visit is the reward.
        required = rules_.stamps_to_collect
        terms, params = stamp_terms(rules_)
        stamps = {
            "have": card.stamps,
            "required": required,
            "cells": [i < card.stamps for i in range(required)],
            "terms": (terms, params),
        }
        if rules_.multi_kind:
            # Several stamp kinds: each with its own row of cells, and all on one line.
            kinds = held_by_kind(rules_, card.stamps, card.kind_stamps)
            stamps["line"] = stamp_kinds_line(kinds)
            stamps["kinds"] = [
                {
                    "name": name,
                    "have": have,
                    "required": cells,
                    "cells": [i < have for i in range(cells)],
                    "terms": stamp_terms(kind),
                }
                for (name, have, cells), kind in zip(kinds, rules_.stamp_kinds(), strict=True)
            ]
    locations = session.scalars(
        select(Location)
        .where(Location.merchant_id == merchant.id, Location.active.is_(True))
        .order_by(Location.id)
    ).all()
    name, _locale = first_name(session, card)
    share = None
    if card.customer_id is not None and card.status == "active" and referral_pays(program):
        share = {"url": referral_url(card), "points": getattr(rules_, "referral_points", 0)}
    return {
        "card": card,
        "view": view,
        "holder": name,
        "brand": brand(program, merchant, card.tier),
        "offer": offer(program),
        "history": history,
        "stamps": stamps,
        "qr": qr_svg(card.code, scale=6, border=3, inline=True) if card.status == "active" else None,
        "code_display": " ".join(card.code[i : i + 4] for i in range(0, len(card.code), 4)),
        "wallet": wallet_paths(session, card),
        "share": share,
        "anonymous": card.customer_id is None,
        "invite_path": join_path(program.id, invite=card.public_token, channel=card.channel)
        if card.customer_id is None and card.status == "active" and program.status == "active"
        else None,
        "locations": [{"name": loc.name, "address": loc.address, "phone": loc.phone} for loc in locations],
        "currency": merchant.currency,
        "timezone": merchant.timezone,
        "program_kind": program.kind,
        # Other parts' lines (running subscriptions: what is left, until when).
        "notes": card_notes(session, card),
        "tz": tz,
        # "Rate your visit" after the latest purchase (feedback switched on, not answered).
        "rate_path": pending_rate_path(session, card, merchant, dt.datetime.now(dt.UTC)),
    }
