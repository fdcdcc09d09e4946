"""Referral: a guest's share link, and whether a friend's join through it pays."""

from __future__ import annotations

import datetime as dt
import hmac

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalwallet.cards.models import Card
from loyalwallet.customers.models import Customer
from loyalwallet.enrollment import rules
from loyalwallet.enrollment.limits import derived_key
from loyalwallet.enrollment.links import base_url
from loyalwallet.enrollment.models import Join
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules
from loyalwallet.programs.service import rules_of


def referral_token(card: Card) -> str:
    return rules.referral_token(derived_key("referral"), card.merchant_id, card.id)


def referral_url(card: Card) -> str:
    return f"{base_url()}/r/{referral_token(card)}"


def referrer_for(session: Session, token: str | None) -> Card | None:
    """The card a share-link token belongs to, or None if the token is forged or stale."""
    card_id = rules.referral_card_id(token or "")
    if card_id is None:
        return None
    card = session.get(Card, card_id)
    if card is None:
        return None
    expected = rules.referral_tag(derived_key("referral"), card.merchant_id, card.id)
    return card if hmac.compare_digest(expected, (token or "").partition("-")[2]) else None


def referral_pays(program: Program) -> bool:
    rules_ = rules_of(program)
    return isinstance(rules_, BonusRules) and rules_.referral_points > 0


def referral_verdict(
    session: Session,
    program: Program,
    referrer: Card,
    customer: Customer,
    friend_is_new: bool,
    ipx: str | None,
    devx: str | None,
    now: dt.datetime,
) -> str:
    usable = (
        referrer.program_id == program.id
        and referrer.status == "active"
        and referrer.customer_id is not None
        and referral_pays(program)
    )
    referrer_join = session.scalars(
        select(Join).where(Join.card_id == referrer.id).order_by(Join.id.desc()).limit(5)
    ).all()
    same_device = devx is not None and any(j.device_hash == devx for j in referrer_join)
    same_ip_day = 0
    if ipx is not None:
        same_ip_day = (
            session.scalar(
                select(func.count()).where(
                    Join.referrer_card_id == referrer.id,
                    Join.ip_hash == ipx,
                    Join.created_at > now - rules.DAY,
                )
            )
            or 0
        )
    last_month = (
        session.scalar(
            select(func.count()).where(
                Join.referrer_card_id == referrer.id, Join.created_at > now - dt.timedelta(days=30)
            )
        )
        or 0
    )
    return rules.referral_verdict(
        rules.ReferralFacts(
            referrer_usable=usable,
            friend_is_new=friend_is_new,
            same_customer=referrer.customer_id == customer.id,
            same_device=same_device,
            same_ip_last_day=int(same_ip_day),
            last_month=int(last_month),
        )
    )
