"""Enrollment use cases: join-form settings, channels, the SMS-confirmed join, invitation
cards, referrals and what the web card shows.

The join is two steps. `start_join` checks the form, the consents and the rate limits,
stores what was typed sealed in an OTP challenge and queues the SMS; nothing about the
guest exists yet. `verify` checks the code and, in one transaction, creates or finds
the guest and the card, records the consents, the channel and the referral. A wrong
code only counts an attempt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.cards.book import CardBook
from loyalwallet.cards.models import Card, Coupon
from loyalwallet.cards.service import enroll
from loyalwallet.config import env, get_settings
from loyalwallet.customers.models import Customer
from loyalwallet.customers.service import GuestData, get_or_create, phone_index, record_consent
from loyalwallet.enrollment import rules
from loyalwallet.enrollment.models import Channel, ConsentText, Join, JoinForm, OtpChallenge, RateHit
from loyalwallet.enrollment.sms import queue_sms
from loyalwallet.errors import DomainError, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_location
from loyalwallet.outbox.service import emit_event
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules, StampRules
from loyalwallet.programs.service import get_program, rules_of
from loyalwallet.text import gettext_for


def guest_actor(merchant_id: int) -> Actor:
    return Actor(merchant_id=merchant_id, role="guest", kind="guest")


# --- keys, hashes, locks ----------------------------------------------------------------


def _key(purpose: str) -> bytes:
    """A key for one purpose, derived from the server's session key."""
    return hmac.new(get_settings().session_key, purpose.encode(), hashlib.sha256).digest()


def ip_hash(ip: str | None) -> str | None:
    """Keyed, so the small IPv4 space cannot be reversed from a leaked table."""
    return hmac.new(_key("ip"), ip.encode(), hashlib.sha256).hexdigest()[:32] if ip else None


def device_hash(device_id: str | None) -> str | None:
    if not device_id or len(device_id) > 100:
        return None
    return hmac.new(_key("device"), device_id.encode(), hashlib.sha256).hexdigest()[:32]


def _serialise(session: Session, name: str) -> None:
    """Make transactions about the same thing (a phone, an IP) take turns. SQLite's
    BEGIN IMMEDIATE already serialises writers; PostgreSQL takes an advisory lock."""
    if db.is_sqlite():
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def check_limit(session: Session, kind: str, key: str, now: dt.datetime) -> None:
    """Raise rate_limited (with retry_after seconds) when one more `kind` event for
    `key` is over the limit. Counted in the database: every process agrees."""
    limits = rules.LIMITS[kind]
    bucket = f"{kind}:{key}"[:100]
    _serialise(session, bucket)
    hits = session.scalars(
        select(RateHit.created_at).where(
            RateHit.bucket == bucket, RateHit.created_at > now - rules.longest_window(limits)
        )
    ).all()
    wait = rules.retry_after(limits, list(hits), now)
    if wait is not None:
        raise DomainError(
            "rate_limited", f"too many requests; try again in {wait} s", retry_after=wait, limit=kind
        )


def count_hit(session: Session, kind: str, key: str, now: dt.datetime) -> None:
    session.add(RateHit(bucket=f"{kind}:{key}"[:100], created_at=now))


# --- programs as the public sees them ---------------------------------------------------


def public_program(session: Session, program_id: int) -> tuple[Program, Merchant]:
    """The program behind a join link. An archived one raises program_archived."""
    program = session.get(Program, program_id)
    if program is None:
        raise not_found("program")
    merchant = session.get(Merchant, program.merchant_id)
    assert merchant is not None
    if program.status != "active":
        raise DomainError("program_archived", "this program no longer takes new guests")
    return program, merchant


def base_url() -> str:
    return get_settings().base_url


def join_path(program_id: int, **params: str | None) -> str:
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in params.items() if v})
    return f"/join/{program_id}" + (f"?{query}" if query else "")


# --- join-form settings -----------------------------------------------------------------


def form_settings(session: Session, program: Program) -> rules.FormSettings:
    row = session.get(JoinForm, program.id)
    return rules.parse_form_settings(row.settings if row else None)


def save_form_settings(
    session: Session, actor: Actor, program: Program, raw: dict[str, Any]
) -> rules.FormSettings:
    actor.require("manager")
    parsed = rules.parse_form_settings(raw)
    stored = parsed.model_dump(mode="json", exclude_none=True)
    row = session.get(JoinForm, program.id)
    if row is None:
        row = JoinForm(program_id=program.id, merchant_id=program.merchant_id, settings=stored)
        session.add(row)
    else:
        row.settings = stored
        row.updated_at = db.utcnow()
    for kind, wording in (
        ("personal_data", parsed.personal_data_text),
        ("marketing", parsed.marketing_text),
    ):
        if wording:
            remember_text(session, program.merchant_id, kind, wording)
    audit(session, actor, "join_form.update", "program", program.id, {"fields": len(parsed.fields)})
    return parsed


def consent_texts(settings: rules.FormSettings, merchant: Merchant, lang: str) -> tuple[str, str]:
    """The two consent wordings shown to a guest in `lang` (the merchant's, or ours)."""
    _ = gettext_for(lang)
    personal = settings.personal_data_text or _(
        "I agree that %(merchant)s processes my personal data (phone, name and what I entered above) "
        "to run my loyalty card, under Federal Law No. 152-FZ. I can withdraw this consent at any time."
    ) % {"merchant": merchant.name}
    marketing = settings.marketing_text or _(
        "I would like to receive offers and news from %(merchant)s by SMS and in my card."
    ) % {"merchant": merchant.name}
    return personal, marketing


def remember_text(session: Session, merchant_id: int, kind: str, wording: str) -> str:
    """Store a consent wording once and return its version."""
    version = rules.text_version(wording)
    exists = session.scalar(
        select(ConsentText.id).where(
            ConsentText.merchant_id == merchant_id, ConsentText.kind == kind, ConsentText.version == version
        )
    )
    if exists is None:
        session.add(ConsentText(merchant_id=merchant_id, kind=kind, version=version, text=wording))
        session.flush()
    return version


def form_view(session: Session, program: Program, settings: rules.FormSettings) -> dict[str, Any]:
    merchant = session.get(Merchant, program.merchant_id)
    assert merchant is not None
    out = settings.model_dump(mode="json")
    personal, marketing = consent_texts(settings, merchant, merchant.locale or "ru")
    out.update(
        program_id=program.id,
        personal_data_version=rules.text_version(personal),
        marketing_version=rules.text_version(marketing),
        join_url=base_url() + join_path(program.id),
        widget=widget_snippets(program.id, None),
    )
    return out


def widget_snippets(program_id: int, channel_slug: str | None) -> dict[str, str]:
    base = base_url()
    data_channel = f' data-channel="{channel_slug}"' if channel_slug else ""
    src = base + join_path(program_id, channel=channel_slug, embed="1")
    return {
        "script": (
            f'<script async src="{base}/static/enrollment/widget.js" '
            f'data-program="{program_id}"{data_channel}></script>'
        ),
        "iframe": (
            f'<iframe src="{src}" title="Loyalty card" loading="lazy" '
            f'style="width:100%;max-width:480px;height:760px;border:0"></iframe>'
        ),
    }


# --- channels ---------------------------------------------------------------------------


def _unique_slug(session: Session, merchant_id: int, kind: str) -> str:
    stem = kind.replace("_", "-")
    taken = set(
        session.scalars(
            select(Channel.slug).where(Channel.merchant_id == merchant_id, Channel.slug.like(f"{stem}%"))
        )
    )
    n = 1
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def create_channel(session: Session, actor: Actor, data: dict[str, Any]) -> Channel:
    actor.require("manager")
    program = get_program(session, actor.merchant_id, data["program_id"])
    if program.status != "active":
        raise DomainError("program_archived", "the program is archived")
    kind = data["kind"]
    if kind not in rules.CHANNEL_KINDS:
        raise DomainError("validation_error", "unknown channel kind", field="kind")
    slug = data.get("slug") or _unique_slug(session, actor.merchant_id, kind)
    if not rules.SLUG_RE.match(slug):
        raise DomainError("validation_error", "slug: 2-40 lowercase letters, digits and dashes", field="slug")
    if session.scalar(
        select(Channel.id).where(Channel.merchant_id == actor.merchant_id, Channel.slug == slug)
    ):
        raise DomainError("conflict", f"a channel with slug {slug!r} exists", field="slug")
    if data.get("location_id") is not None:
        get_location(session, actor.merchant_id, data["location_id"])
    source, medium = rules.CHANNEL_KINDS[kind]
    channel = Channel(
        merchant_id=actor.merchant_id,
        program_id=program.id,
        location_id=data.get("location_id"),
        kind=kind,
        name=data["name"].strip(),
        slug=slug,
        token=crypto.token(6),
        utm_source=data.get("utm_source") or source or slug,
        utm_medium=data.get("utm_medium") or medium,
        utm_campaign=data.get("utm_campaign"),
        offer=data.get("offer") or None,
        invitation=bool(data.get("invitation", False)),
        status="active",
        scans=0,
    )
    session.add(channel)
    session.flush()
    audit(session, actor, "channel.create", "channel", channel.id, {"kind": kind, "slug": slug})
    return channel


def get_channel(session: Session, merchant_id: int, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None or channel.merchant_id != merchant_id:
        raise not_found("channel")
    return channel


def update_channel(session: Session, actor: Actor, channel: Channel, changes: dict[str, Any]) -> Channel:
    actor.require("manager")
    for name in ("name", "utm_source", "utm_medium", "utm_campaign", "offer", "invitation", "status"):
        if name in changes and changes[name] is not None:
            value = changes[name]
            setattr(channel, name, value.strip() if isinstance(value, str) else value)
    if "location_id" in changes:
        if changes["location_id"] is not None:
            get_location(session, actor.merchant_id, changes["location_id"])
        channel.location_id = changes["location_id"]
    audit(
        session,
        actor,
        "channel.update",
        "channel",
        channel.id,
        {k: v for k, v in changes.items() if v is not None},
    )
    return channel


def list_channels(
    session: Session, merchant_id: int, program_id: int | None, archived: bool
) -> list[Channel]:
    stmt = select(Channel).where(Channel.merchant_id == merchant_id).order_by(Channel.id)
    if program_id is not None:
        stmt = stmt.where(Channel.program_id == program_id)
    if not archived:
        stmt = stmt.where(Channel.status == "active")
    return list(session.scalars(stmt))


def channel_join_path(channel: Channel) -> str:
    return join_path(
        channel.program_id,
        channel=channel.slug,
        utm_source=channel.utm_source,
        utm_medium=channel.utm_medium,
        utm_campaign=channel.utm_campaign,
    )


def channel_stats(session: Session, channels: list[Channel]) -> dict[int, dict[str, int]]:
    """Cards issued and joins completed per channel (one query each)."""
    if not channels:
        return {}
    merchant_id = channels[0].merchant_id
    slugs: dict[tuple[int, str | None], int] = {(c.program_id, c.slug): c.id for c in channels}
    cards = session.execute(
        select(Card.program_id, Card.channel, func.count())
        .where(Card.merchant_id == merchant_id, Card.channel.in_([c.slug for c in channels]))
        .group_by(Card.program_id, Card.channel)
    ).all()
    joins = session.execute(
        select(Join.channel_id, func.count())
        .where(Join.merchant_id == merchant_id, Join.channel_id.in_([c.id for c in channels]))
        .group_by(Join.channel_id)
    ).all()
    out = {c.id: {"scans": c.scans, "cards": 0, "joins": 0} for c in channels}
    for program_id, slug, n in cards:
        cid = slugs.get((program_id, slug))
        if cid is not None:
            out[cid]["cards"] = int(n)
    for cid, n in joins:
        if cid is not None:  # never: the query selects only these channels
            out[cid]["joins"] = int(n)
    return out


def channel_view(channel: Channel, stats: dict[str, int] | None = None) -> dict[str, Any]:
    base = base_url()
    api = f"{base}/api/v1/channels/{channel.id}"
    return {
        "id": channel.id,
        "program_id": channel.program_id,
        "location_id": channel.location_id,
        "kind": channel.kind,
        "name": channel.name,
        "slug": channel.slug,
        "utm_source": channel.utm_source,
        "utm_medium": channel.utm_medium,
        "utm_campaign": channel.utm_campaign,
        "offer": channel.offer,
        "invitation": channel.invitation,
        "status": channel.status,
        "short_url": f"{base}/j/{channel.token}",
        "join_url": base + channel_join_path(channel),
        "qr_svg_url": f"{api}/qr.svg",
        "qr_png_url": f"{api}/qr.png",
        "table_tent_pdf_url": f"{api}/table-tent.pdf",
        "widget": widget_snippets(channel.program_id, channel.slug),
        "stats": stats or {"scans": channel.scans, "cards": 0, "joins": 0},
        "created_at": channel.created_at.isoformat(),
    }


def channel_by_token(session: Session, token: str) -> Channel:
    channel = session.scalar(select(Channel).where(Channel.token == token))
    if channel is None:
        raise not_found("link")
    return channel


def count_scan(session: Session, channel: Channel) -> None:
    session.execute(update(Channel).where(Channel.id == channel.id).values(scans=Channel.scans + 1))


def channel_for_join(session: Session, program: Program, slug: str | None) -> Channel | None:
    """The active channel a join link names, if it belongs to this program."""
    if not slug or len(slug) > 64:
        return None
    return session.scalar(
        select(Channel).where(
            Channel.merchant_id == program.merchant_id,
            Channel.program_id == program.id,
            Channel.slug == slug,
            Channel.status == "active",
        )
    )


# --- referral ---------------------------------------------------------------------------


def referral_token(card: Card) -> str:
    return rules.referral_token(_key("referral"), card.merchant_id, card.id)


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
    expected = rules.referral_tag(_key("referral"), card.merchant_id, card.id)
    return card if hmac.compare_digest(expected, (token or "").partition("-")[2]) else None


def referral_pays(program: Program) -> bool:
    rules_ = rules_of(program)
    return isinstance(rules_, BonusRules) and rules_.referral_points > 0


def _referral_verdict(
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


# --- the join ---------------------------------------------------------------------------


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
        code_hash=rules.otp_hash(_key("otp"), token, code),
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
        raise DomainError(
            "rate_limited", f"wait {wait} s before asking for a new code", retry_after=wait, limit="resend"
        )
    phone = challenge_phone(challenge)
    global_phone = crypto.blind_index(phone, merchant_id=0)
    ipx = ip_hash(ip)
    check_limit(session, "sms_phone", global_phone, now)
    if ipx:
        check_limit(session, "sms_ip", ipx, now)
    check_limit(session, "sms_merchant", str(merchant.id), now)
    code = rules.new_otp()
    challenge.code_hash = rules.otp_hash(_key("otp"), challenge.token, code)
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
    if not rules.otp_matches(_key("otp"), challenge.token, code, challenge.code_hash):
        challenge.attempts += 1
        left = rules.OTP_MAX_ATTEMPTS - challenge.attempts
        if left <= 0:
            return Verified(
                error=DomainError("otp_attempts_exceeded", "too many wrong codes; ask for a new one")
            )
        return Verified(
            error=DomainError("otp_invalid", f"the code is wrong; {left} tries left", tries_left=left)
        )
    return _complete(session, challenge, ip, now)


def _complete(session: Session, challenge: OtpChallenge, ip: str | None, now: dt.datetime) -> Verified:
    program, merchant = public_program(session, challenge.program_id)
    data = challenge_data(challenge)
    phone = challenge_phone(challenge)
    actor = guest_actor(merchant.id)
    _serialise(session, f"phone:{challenge.phone_index}")
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
    invitation = _usable_invitation(session, program, data.get("invite"))
    referrer = referrer_for(session, data.get("ref")) if data.get("ref") else None
    ipx = challenge.ip_hash or ip_hash(ip)
    devx = data.get("device_hash")
    verdict = None
    if referrer is not None:
        verdict = _referral_verdict(session, program, referrer, customer, existing is None, ipx, devx, now)
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
    else:
        card, created = enroll(session, actor, program, guest, channel=channel_slug, referrer=accepted)
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


# --- invitation cards -------------------------------------------------------------------


def create_invitation(
    session: Session,
    channel: Channel,
    ip: str | None,
    device_id: str | None,
    user_agent: str | None,
    now: dt.datetime | None = None,
) -> Card:
    """An anonymous card installed straight from a counter QR. It works at once (and
    takes pushes); the form, filled later, makes it the guest's named card."""
    from loyalwallet.cards.service import new_card

    now = now or db.utcnow()
    if channel.status != "active" or not channel.invitation:
        raise not_found("invitation")
    program, _merchant = public_program(session, channel.program_id)
    ipx = ip_hash(ip)
    if ipx:
        check_limit(session, "invite_ip", ipx, now)
        count_hit(session, "invite_ip", ipx, now)
    card = new_card(session, program, None, channel.slug)
    session.add(
        Join(
            merchant_id=program.merchant_id,
            program_id=program.id,
            card_id=card.id,
            kind="invitation",
            created=True,
            channel_id=channel.id,
            channel=channel.slug,
            utm_source=channel.utm_source,
            utm_medium=channel.utm_medium,
            utm_campaign=channel.utm_campaign,
            platform=rules.platform(user_agent),
            ip_hash=ipx,
            device_hash=device_hash(device_id),
            created_at=now,
        )
    )
    audit(
        session,
        guest_actor(program.merchant_id),
        "card.invitation",
        "card",
        card.code,
        {"channel": channel.slug},
    )
    return card


def _usable_invitation(session: Session, program: Program, public_token: str | None) -> Card | None:
    if not public_token:
        return None
    card = session.scalar(
        db.for_update(
            select(Card).where(
                Card.public_token == public_token,
                Card.program_id == program.id,
                Card.customer_id.is_(None),
                Card.status == "active",
            )
        )
    )
    return card


def claim_invitation(
    session: Session,
    actor: Actor,
    program: Program,
    card: Card,
    customer: Customer,
    referrer: Card | None,
    now: dt.datetime,
) -> Card:
    """The anonymous card becomes the guest's: their name on it, the welcome gift."""
    card.customer_id = customer.id
    if referrer is not None:
        card.referrer_card_id = referrer.id
    book = CardBook(session, card, program, now)
    rules_ = book.rules
    if isinstance(rules_, BonusRules) and rules_.welcome_points:
        book.credit("welcome", rules_.welcome_points, actor=actor, reason="welcome gift")
    if isinstance(rules_, StampRules) and rules_.welcome_stamps:
        book.add_stamps("welcome", rules_.welcome_stamps, reason="welcome gift")
    book.touch("claimed")
    audit(session, actor, "card.claim", "card", card.code, {"program_id": program.id})
    emit_event(session, program.merchant_id, "card.created", {"code": card.code, "program_id": program.id})
    return card


def merge_invitation(
    session: Session, program: Program, source: Card, target: Card, now: dt.datetime, lang: str = "ru"
) -> None:
    """The guest already had a card: keep it (its history, its place in the wallet and at
    the till) and move what the invitation card collected onto it. The invitation card
    is blocked with a message pointing to the kept card."""
    from loyalwallet.cards.book import lock_card_by_id

    # Lock in id order: two merges never wait on each other crosswise.
    for card_id in sorted((source.id, target.id)):
        lock_card_by_id(session, card_id)
    src = CardBook(session, source, program, now)
    dst = CardBook(session, target, program, now)
    src.expire_due()
    dst.expire_due()
    points = source.balance
    if points > 0:
        src.take_back("adjustment", points, allow_debt=False, reason=f"moved to card {target.code}")
        dst.credit("adjustment", points, reason=f"moved from invitation card {source.code}")
    elif points < 0:
        src.credit("adjustment", -points, ttl_days=None, reason=f"debt moved to card {target.code}")
        dst.take_back("adjustment", -points, allow_debt=True, reason=f"debt moved from card {source.code}")
    stamps = source.stamps
    if stamps:
        src.add_stamps("adjustment", -stamps, reason=f"moved to card {target.code}")
        dst.add_stamps("adjustment", stamps, reason=f"moved from invitation card {source.code}")
    session.execute(
        update(Coupon)
        .where(Coupon.card_id == source.id, Coupon.status == "available")
        .values(card_id=target.id)
    )
    target.spend += source.spend
    target.visits += source.visits
    source.spend = 0
    source.visits = 0
    if source.first_purchase_at and (
        not target.first_purchase_at or source.first_purchase_at < target.first_purchase_at
    ):
        target.first_purchase_at = source.first_purchase_at
    if source.last_visit_at and (not target.last_visit_at or source.last_visit_at > target.last_visit_at):
        target.last_visit_at = source.last_visit_at
    dst.retier()
    source.status = "blocked"
    source.message = gettext_for(lang)("This card was joined to your card %(code)s: please use that one.") % {
        "code": target.code
    }
    source.message_at = now
    src.touch("merged")
    dst.touch("merged")
    audit(
        session,
        guest_actor(program.merchant_id),
        "card.merge",
        "card",
        target.code,
        {"from": source.code, "points": points, "stamps": stamps},
    )


def merged_into(session: Session, card: Card) -> Card | None:
    """The card an invitation card was merged into, if it was."""
    target_id = session.scalar(
        select(Join.card_id).where(Join.invitation_card_id == card.id, Join.card_id != card.id).limit(1)
    )
    return session.get(Card, target_id) if target_id else None
