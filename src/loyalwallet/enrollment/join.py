"""The SMS-confirmed join.

The join is two steps. `start_join` checks the form, the consents and the rate limits,
stores what was typed sealed in an OTP challenge and queues the SMS; nothing about the
guest exists yet. `verify` checks the code and, in one transaction, creates or finds
the guest and the card, records the consents, the channel and the referral. A wrong
code only counts an attempt.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.cards.codes import normalise
from loyalwallet.cards.models import Card
from loyalwallet.cards.service import enroll
from loyalwallet.config import env, get_settings
from loyalwallet.customers.service import GuestData, get_or_create, phone_index, record_consent
from loyalwallet.enrollment import rules
from loyalwallet.enrollment.channels import channel_for_join
from loyalwallet.enrollment.forms import consent_texts, form_settings, remember_text
from loyalwallet.enrollment.invitations import claim_invitation, merge_invitation, usable_invitation
from loyalwallet.enrollment.limits import check_limit, count_hit, derived_key, device_hash, ip_hash, serialise
from loyalwallet.enrollment.links import base_url, guest_actor, public_program
from loyalwallet.enrollment.models import Channel, Join, OtpChallenge
from loyalwallet.enrollment.referral import referral_verdict, referrer_for
from loyalwallet.enrollment.sms import queue_sms
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.imports.service import program_for_plastic
from loyalwallet.merchants.models import Merchant
from loyalwallet.programs.models import Program
from loyalwallet.text import gettext_for


@dataclass
class JoinRequest:
    """What the join page posted, and where it came from."""

    program_id: int
    values: dict[str, str]
    personal_data: bool
    marketing: bool
    lang: str
    channel: str | None = None
    utm: dict[str, str | None] = field(default_factory=dict)
    ref: str | None = None
    invite: str | None = None
    embed: bool = False
    ip: str | None = None
    device_id: str | None = None
    user_agent: str | None = None
    honeypot: str | None = None
    # join_page (the guest's own form) or api (a POS or cashier asked on the guest's behalf)
    source: str = "join_page"
    # A plastic card's printed number (checked by the caller against the code ranges).
    plastic: str | None = None


def sms_regions() -> list[str] | None:
    raw = env("SMS_REGIONS", get_settings().default_region) or ""
    if raw.strip() == "*":
        return None
    return [r.strip().upper() for r in raw.split(",") if r.strip()]


def sms_text(lang: str, merchant: Merchant, code: str) -> str:
    _ = gettext_for(lang)
    body = _("Your code: %(code)s. %(merchant)s") % {"code": code, "merchant": merchant.name[:30]}
    base = base_url()
    if base.startswith("https://"):
        # WebOTP: browsers offer to fill the code in on this origin.
        body += f"\n\n@{base.split('://', 1)[1].split('/')[0]} #{code}"
    return body


def start_join(session: Session, req: JoinRequest, now: dt.datetime | None = None) -> OtpChallenge:
    """Check the form and send a code. Raises validation_error with `fields` (input name
    -> English message), consent_required, rate_limited or program_archived."""
    now = now or db.utcnow()
    program, merchant = public_program(session, req.program_id)
    settings = form_settings(session, program)
    if req.honeypot:
        # Only robots fill the invisible field; tell them nothing useful.
        raise DomainError("validation_error", "the form is not valid", fields={})
    form, errors = rules.clean_form(
        settings,
        req.values,
        today=now.date(),
        region=get_settings().default_region,
        sms_regions=sms_regions(),
    )
    if not req.personal_data:
        errors["personal_data"] = rules.ERR_CONSENT
    if errors:
        code = "consent_required" if list(errors) == ["personal_data"] else "validation_error"
        raise DomainError(code, "; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors)
    assert form.phone is not None
    personal, marketing = consent_texts(settings, merchant, req.lang)
    ipx = ip_hash(req.ip)
    global_phone = crypto.blind_index(form.phone, merchant_id=0)
    check_limit(session, "sms_phone", global_phone, now)
    if ipx:
        check_limit(session, "sms_ip", ipx, now)
    check_limit(session, "sms_merchant", str(merchant.id), now)

    channel = channel_for_join(session, program, req.channel)
    data = {
        "form": {
            "name": form.name,
            "birthday": form.birthday.isoformat() if form.birthday else None,
            "email": form.email,
            "gender": form.gender,
            "city": form.city,
            "custom": form.custom,
        },
        "consents": {
            "personal_data": remember_text(session, merchant.id, "personal_data", personal),
            "marketing": (
                remember_text(session, merchant.id, "marketing", marketing)
                if req.marketing and settings.ask_marketing
                else None
            ),
        },
        "lang": req.lang,
        "channel_id": channel.id if channel else None,
        "channel": channel.slug if channel else None,
        "utm": {k: rules.utm_value(req.utm.get(k)) for k in rules.UTM_KEYS},
        "ref": req.ref if req.ref and len(req.ref) <= 40 else None,
        "invite": req.invite if req.invite and len(req.invite) <= 64 else None,
        "embed": req.embed,
        "platform": rules.platform(req.user_agent),
        "device_hash": device_hash(req.device_id),
        "source": req.source,
        "plastic": req.plastic,
    }
    token = crypto.token(24)
    code = rules.new_otp()
    challenge = OtpChallenge(
        merchant_id=merchant.id,
        program_id=program.id,
        token=token,
        phone_index=phone_index(merchant.id, form.phone),
        phone_enc=crypto.seal(form.phone, merchant_id=merchant.id, column="otp_phone"),
        data_enc=crypto.seal(
            json.dumps(data, ensure_ascii=False), merchant_id=merchant.id, column="otp_data"
        ),
        code_hash=rules.otp_hash(derived_key("otp"), token, code),
        attempts=0,
        sends=1,
        status="pending",
        expires_at=now + rules.OTP_TTL,
        resend_at=now + rules.RESEND_COOLDOWN,
        ip_hash=ipx,
        created_at=now,
    )
    session.add(challenge)
    _count_sms(session, global_phone, ipx, merchant.id, now)
    queue_sms(
        session, merchant.id, form.phone, sms_text(req.lang, merchant, code), not_after=challenge.expires_at
    )
    session.flush()
    return challenge


def _count_sms(
    session: Session, global_phone: str, ipx: str | None, merchant_id: int, now: dt.datetime
) -> None:
    count_hit(session, "sms_phone", global_phone, now)
    if ipx:
        count_hit(session, "sms_ip", ipx, now)
    count_hit(session, "sms_merchant", str(merchant_id), now)


def plastic_code(session: Session, merchant_id: int, program_id: int, raw: str) -> str:
    """A plastic card's number, normalised, when it is in a code range of this programme
    and not issued yet; validation_error otherwise."""
    program = program_for_plastic(session, merchant_id, raw)
    if program is None or program.id != program_id:
        raise DomainError(
            "validation_error",
            "this number is in no card code range of the program, or is already issued",
            field="card_code",
        )
    return normalise(raw).upper()


def challenge_phone(challenge: OtpChallenge) -> str:
    phone = crypto.open_(challenge.phone_enc, merchant_id=challenge.merchant_id, column="otp_phone")
    assert phone is not None
    return phone


def challenge_data(challenge: OtpChallenge) -> dict[str, Any]:
    raw = crypto.open_(challenge.data_enc, merchant_id=challenge.merchant_id, column="otp_data")
    return json.loads(raw or "{}")


def get_challenge(session: Session, token: str, *, lock: bool = False) -> OtpChallenge:
    if not token or len(token) > 64:
        raise not_found("code request")
    stmt = select(OtpChallenge).where(OtpChallenge.token == token)
    challenge = session.scalar(db.for_update(stmt) if lock else stmt)
    if challenge is None:
        raise not_found("code request")
    return challenge


def resend(session: Session, token: str, ip: str | None, now: dt.datetime | None = None) -> OtpChallenge:
    """A new code for the same request, after the cooldown and within the limits. The
    old code stops working; the tries start again."""
    now = now or db.utcnow()
    challenge = get_challenge(session, token, lock=True)
    if challenge.status != "pending":
        raise DomainError("conflict", "this phone is already confirmed")
    program, merchant = public_program(session, challenge.program_id)
    if now < challenge.resend_at:
        wait = max(1, int((challenge.resend_at - now).total_seconds() + 0.999))
        raise Explained(
            "rate_limited",
            "wait {wait} s before asking for a new code",
            wait=wait,
            extra={"retry_after": wait, "limit": "resend"},
        )
    phone = challenge_phone(challenge)
    global_phone = crypto.blind_index(phone, merchant_id=0)
    ipx = ip_hash(ip)
    check_limit(session, "sms_phone", global_phone, now)
    if ipx:
        check_limit(session, "sms_ip", ipx, now)
    check_limit(session, "sms_merchant", str(merchant.id), now)
    code = rules.new_otp()
    challenge.code_hash = rules.otp_hash(derived_key("otp"), challenge.token, code)
    challenge.attempts = 0
    challenge.sends += 1
    challenge.expires_at = now + rules.OTP_TTL
    # Each further code waits longer: 1, 2, 3 ... minutes.
    challenge.resend_at = now + rules.RESEND_COOLDOWN * challenge.sends
    _count_sms(session, global_phone, ipx, merchant.id, now)
    lang = challenge_data(challenge).get("lang") or "ru"
    queue_sms(session, merchant.id, phone, sms_text(lang, merchant, code), not_after=challenge.expires_at)
    del program
    return challenge


@dataclass
class Verified:
    card: Card | None = None
    program: Program | None = None
    created: bool = False
    merged: bool = False
    error: DomainError | None = None


def verify(
    session: Session, token: str, code: str, ip: str | None = None, now: dt.datetime | None = None
) -> Verified:
    """Check a code. A wrong one counts an attempt and is returned as `error` (the
    caller commits the count); a right one makes the card in this same transaction."""
    now = now or db.utcnow()
    challenge = get_challenge(session, token, lock=True)
    if challenge.status == "verified" and challenge.card_id is not None:
        card = session.get(Card, challenge.card_id)
        return Verified(card=card, program=session.get(Program, challenge.program_id))
    if challenge.attempts >= rules.OTP_MAX_ATTEMPTS:
        return Verified(error=DomainError("otp_attempts_exceeded", "too many wrong codes; ask for a new one"))
    if now >= challenge.expires_at:
        return Verified(error=DomainError("otp_expired", "the code has expired; ask for a new one"))
    if not rules.otp_matches(derived_key("otp"), challenge.token, code, challenge.code_hash):
        challenge.attempts += 1
        left = rules.OTP_MAX_ATTEMPTS - challenge.attempts
        if left <= 0:
            return Verified(
                error=DomainError("otp_attempts_exceeded", "too many wrong codes; ask for a new one")
            )
        return Verified(
            error=Explained(
                "otp_invalid", "the code is wrong; {left} tries left", left=left, extra={"tries_left": left}
            )
        )
    return _complete(session, challenge, ip, now)


def _complete(session: Session, challenge: OtpChallenge, ip: str | None, now: dt.datetime) -> Verified:
    program, merchant = public_program(session, challenge.program_id)
    data = challenge_data(challenge)
    phone = challenge_phone(challenge)
    actor = guest_actor(merchant.id)
    serialise(session, f"phone:{challenge.phone_index}")
    form = data.get("form") or {}
    extra = {k: v for k, v in {"city": form.get("city"), **(form.get("custom") or {})}.items() if v}
    guest = GuestData(
        phone=phone,
        name=form.get("name"),
        email=form.get("email"),
        birthday=dt.date.fromisoformat(form["birthday"]) if form.get("birthday") else None,
        gender=form.get("gender"),
        extra=extra or None,
        locale=data.get("lang"),
    )
    customer, _ = get_or_create(session, merchant.id, guest)
    existing = session.scalar(
        select(Card).where(Card.program_id == program.id, Card.customer_id == customer.id)
    )
    invitation = usable_invitation(session, program, data.get("invite"))
    referrer = referrer_for(session, data.get("ref")) if data.get("ref") else None
    ipx = challenge.ip_hash or ip_hash(ip)
    devx = data.get("device_hash")
    verdict = None
    if referrer is not None:
        verdict = referral_verdict(session, program, referrer, customer, existing is None, ipx, devx, now)
    accepted = referrer if verdict == "accepted" else None
    utm = data.get("utm") or {}
    source = data.get("source") or "join_page"
    channel_slug = rules.card_channel(
        data.get("channel"),
        utm.get("utm_source"),
        referred=accepted is not None,
        fallback="pos" if source == "api" else "join_page",
    )
    merged = False
    if existing is not None:
        card, created = existing, False
        if invitation is not None and invitation.id != existing.id:
            merge_invitation(session, program, invitation, existing, now, data.get("lang") or "ru")
            merged = True
    elif invitation is not None:
        card, created = claim_invitation(session, actor, program, invitation, customer, accepted, now), True
    elif data.get("plastic"):
        # The plastic card handed out at the counter: its number is the card's code, if
        # nobody took it while the guest was reading the SMS.
        plastic = plastic_code(session, merchant.id, program.id, data["plastic"])
        card, created = enroll(session, actor, program, guest, channel="plastic", code=plastic)
        channel_slug = "plastic"
    else:
        card, created = enroll(session, actor, program, guest, channel=channel_slug, referrer=accepted)
    if created and card.issued_location_id is None and data.get("channel"):
        # A join link (QR) of a location: the card was issued there (staff reports).
        card.issued_location_id = session.scalar(
            select(Channel.location_id).where(
                Channel.merchant_id == merchant.id, Channel.slug == str(data["channel"])[:64]
            )
        )
    version = (data.get("consents") or {}).get("personal_data")
    details = {"program_id": program.id, "card": card.code, "channel": data.get("channel") or channel_slug}
    record_consent(session, customer, "personal_data", True, version or "unknown", source, details)
    marketing_version = (data.get("consents") or {}).get("marketing")
    if marketing_version:
        record_consent(session, customer, "marketing", True, marketing_version, source, details)
    session.add(
        Join(
            merchant_id=merchant.id,
            program_id=program.id,
            card_id=card.id,
            kind="form" if source == "join_page" else source,
            created=created,
            channel_id=data.get("channel_id"),
            channel=data.get("channel") or channel_slug,
            utm_source=utm.get("utm_source"),
            utm_medium=utm.get("utm_medium"),
            utm_campaign=utm.get("utm_campaign"),
            utm_content=utm.get("utm_content"),
            utm_term=utm.get("utm_term"),
            referrer_card_id=referrer.id if referrer is not None else None,
            referral=verdict,
            invitation_card_id=invitation.id if invitation is not None else None,
            platform=data.get("platform"),
            ip_hash=ipx,
            device_hash=devx,
            created_at=now,
        )
    )
    challenge.status = "verified"
    challenge.card_id = card.id
    challenge.outcome = "created" if created else ("merged" if merged else "existing")
    challenge.verified_at = now
    session.flush()
    return Verified(card=card, program=program, created=created, merged=merged)
