"""E-mail campaigns: campaigns.delivery.CHANNELS["email"] hands a chunk of recipients
to `email.campaign` rows; the worker composes each message (the campaign's text, the
card's colours, logo and link, List-Unsubscribe headers) and sends the chunk over one
SMTP connection, kept for the next chunk (email.borrow). Each recipient ends sent,
bounced (the address was refused) or skipped (no address, consent withdrawn since); a
connection failure marks what went out and retries the rest."""

from __future__ import annotations

import datetime as dt
import threading
import time
from email import parser as email_parser
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.campaigns.models import Campaign, CampaignRecipient
from loyalwallet.campaigns.service import finish_if_done
from loyalwallet.cards.models import Card
from loyalwallet.customers.models import Customer
from loyalwallet.enrollment.links import base_url
from loyalwallet.enrollment.webcard import brand
from loyalwallet.merchants.models import Merchant
from loyalwallet.messaging import bounces, email, rules, suppression, unsubscribe
from loyalwallet.outbox.handlers import Delivery, Retry
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs.models import Program
from loyalwallet.text import gettext_for

TOPIC = "email.campaign"


def hand_over(session: Session, c: Campaign, pending: dict[int, int], now: dt.datetime) -> None:
    """CHANNELS["email"]: one `email.campaign` row for the chunk (recipients stay pending)."""
    if pending:
        enqueue(
            session, c.merchant_id, TOPIC, {"campaign_id": c.id, "recipient_ids": sorted(pending.values())}
        )


# A campaign's message is rendered once per look (program, tier, language) with these
# stand-ins, then each guest's copy is that one with the stand-ins replaced (the parts
# are 8bit, so the URLs stay verbatim): composing a MIME message per guest would cost
# more than sending it.
_TO, _CARD, _LEAVE, _MID = (
    "lw-to@lw-placeholder.invalid",
    "https://lw-placeholder.invalid/card",
    "https://lw-placeholder.invalid/unsubscribe",
    "<lw-mid@lw-placeholder.invalid>",
)
_POLICY = email_policy.SMTP.clone(max_line_length=998)


def compose(
    c: Campaign, merchant: Merchant, program: Program, tier: str | None, lang: str, sender: str
) -> bytes:
    """The campaign's message for one look, with stand-ins for the guest's parts."""
    _ = gettext_for(lang)
    look = brand(program, merchant, tier)
    base = base_url().rstrip("/")
    links = [(_("Open the card"), _CARD)]
    footer = _(
        "You get these messages because you agreed to news from %(merchant)s. Unsubscribe: %(url)s"
    ) % {
        "merchant": merchant.name,
        "url": _LEAVE,
    }
    message = EmailMessage(policy=_POLICY)
    message["From"] = sender
    message["To"] = _TO
    message["Subject"] = c.header[:200]
    message["Message-ID"] = _MID
    message["List-Unsubscribe"] = f"<{_LEAVE}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-Campaign"] = str(c.id)
    lines = c.body.splitlines() or [c.body]
    message.set_content(rules.email_text(lines, links, footer), cte="8bit")
    message.add_alternative(
        rules.email_html(
            title=c.header,
            lines=lines,
            links=links,
            footer=footer,
            background=look["background"],
            foreground=look["foreground"],
            logo_url=f"{base}{look['logo_url']}" if look["logo_url"] else None,
            logo_text=look["logo_text"],
        ),
        subtype="html",
        cte="8bit",
    )
    return message.as_bytes()


# The looks composed in this process, kept across the campaign's chunks (composing is most
# of a chunk's own work): keyed by everything a look is made of, short-lived so a change
# of the merchant's logo or name shows within minutes, bounded.
_LOOKS: dict[tuple[Any, ...], tuple[float, bytes]] = {}
_LOOKS_MAX = 64
_LOOKS_TTL = 600.0
_LOOKS_LOCK = threading.Lock()


def look_of(
    c: Campaign, merchant: Merchant, program: Program, tier: str | None, lang: str, sender: str
) -> bytes:
    key = (
        c.id,
        c.updated_at,
        c.header,
        c.body,
        program.id,
        program.updated_at,
        tier,
        lang,
        sender,
        merchant.name,
    )
    now = time.monotonic()
    with _LOOKS_LOCK:  # the worker's threads share it
        hit = _LOOKS.get(key)
    if hit is not None and now - hit[0] < _LOOKS_TTL:
        return hit[1]
    template = compose(c, merchant, program, tier, lang, sender)
    with _LOOKS_LOCK:
        while len(_LOOKS) >= _LOOKS_MAX:
            _LOOKS.pop(next(iter(_LOOKS)))
        _LOOKS[key] = (now, template)
    return template


def render(template: bytes, merchant_id: int, public_token: str, customer_id: int, to: str) -> bytes:
    """One guest's copy of a look: the address, card link, unsubscribe link, Message-ID."""
    base = base_url().rstrip("/")
    return (
        template.replace(_TO_B, to.encode())
        .replace(_CARD_B, f"{base}/c/{public_token}".encode())
        .replace(_LEAVE_B, unsubscribe.url(merchant_id, customer_id).encode())
        .replace(_MID_B, make_msgid(domain="loyalwallet").encode())
    )


_TO_B, _CARD_B, _LEAVE_B, _MID_B = (_TO.encode(), _CARD.encode(), _LEAVE.encode(), _MID.encode())


def _prepare(
    campaign_id: int, recipient_ids: list[int], sender: str, guests: dict[int, int] | None = None
) -> tuple[list[tuple[int, str, bytes]], list[int]]:
    """The messages (recipient, address, bytes) of the recipients still pending, and
    those to skip. Only the columns a message needs are read (whole card and guest rows
    cost more to load than the message costs to send); programs once each."""
    guests = {} if guests is None else guests  # filled: recipient -> guest, for a bounce's mark
    out: list[tuple[int, str, bytes]] = []
    looks: dict[tuple[int, str | None, str], bytes] = {}
    skip: list[int] = []
    with db.read() as session:
        c = session.get(Campaign, campaign_id)
        if c is None:
            return [], []
        merchant = session.get(Merchant, c.merchant_id)
        assert merchant is not None
        rows = session.execute(
            select(
                CampaignRecipient.id,
                Card.status,
                Card.tier,
                Card.public_token,
                Card.program_id,
                Customer.id,
                Customer.email_enc,
                Customer.marketing_consent,
                Customer.erased_at,
                Customer.locale,
            )
            .join(Card, Card.id == CampaignRecipient.card_id)
            .join(Customer, Customer.id == Card.customer_id)
            .where(CampaignRecipient.id.in_(recipient_ids), CampaignRecipient.status == "pending")
            .order_by(CampaignRecipient.id)
        ).all()
        seen = {r[0] for r in rows}
        skip += [i for i in recipient_ids if i not in seen]
        if c.status == "cancelled":
            return [], [*skip, *seen]
        programs: dict[int, Program] = {}
        opened = [crypto.open_(r[6], merchant_id=merchant.id, column="email") for r in rows]
        hashes = {to: suppression.key("email", to) for to in opened if to}
        bounced = suppression.suppressed(session, merchant.id, "email", list(hashes.values()))
        for (
            recipient_id,
            status,
            tier,
            public_token,
            program_id,
            customer_id,
            _email_enc,
            consent,
            erased,
            locale,
        ), to in zip(rows, opened, strict=True):
            if not to or not consent or erased is not None or status != "active":
                skip.append(recipient_id)
                continue
            if hashes[to] in bounced:  # bounced for good before: not mailed again
                skip.append(recipient_id)
                continue
            if not to.isascii():  # an internationalised address: not handled yet
                skip.append(recipient_id)
                continue
            key = (program_id, tier, locale or merchant.locale or "ru")
            if key not in looks:
                if program_id not in programs:
                    program = session.get(Program, program_id)
                    assert program is not None
                    programs[program_id] = program
                looks[key] = look_of(c, merchant, programs[program_id], tier, key[2], sender)
            out.append((recipient_id, to, render(looks[key], merchant.id, public_token, customer_id, to)))
            guests[recipient_id] = customer_id
    return out, skip


def _mark(
    campaign_id: int,
    marks: dict[str, list[int]],
    trails: dict[int, tuple[str, str]] | None = None,
    refused: dict[int, tuple[int, str, str]] | None = None,
) -> None:
    """`refused`: recipient -> (guest, address, code) of the addresses refused for good,
    to be suppressed."""
    now = db.utcnow()
    with db.transaction() as session:
        if refused:
            c = session.get(Campaign, campaign_id)
            for customer_id, to, code in refused.values():
                if c is not None:
                    suppression.add(
                        session,
                        c.merchant_id,
                        "email",
                        suppression.key("email", to),
                        customer_id=customer_id,
                        code=code,
                        now=now,
                    )
        if trails:
            c = session.get(Campaign, campaign_id)
            sent = set(marks.get("sent", ()))
            for recipient_id, (token, to) in trails.items():
                if c is not None and recipient_id in sent:
                    bounces.record(
                        session,
                        c.merchant_id,
                        token,
                        to,
                        campaign_id=campaign_id,
                        recipient_id=recipient_id,
                        now=now,
                    )
        for status, ids in marks.items():
            if ids:
                session.execute(
                    update(CampaignRecipient)
                    .where(CampaignRecipient.id.in_(ids), CampaignRecipient.status == "pending")
                    .values(
                        status=status,
                        sent_at=now if status == "sent" else None,
                        error={"bounced": "address refused", "skipped": "no e-mail or consent"}.get(status),
                    )
                )
        finish_if_done(session, campaign_id, now)


def deliver(msg: Delivery) -> None:
    """email.campaign: send one chunk over one connection."""
    campaign_id = int(msg.payload["campaign_id"])
    provider = email.get_provider()
    sender = provider.settings.sender if isinstance(provider, email.SmtpProvider) else "loyalwallet@localhost"
    guests: dict[int, int] = {}
    items, skip = _prepare(campaign_id, [int(i) for i in msg.payload["recipient_ids"]], sender, guests)
    refused: dict[int, tuple[int, str, str]] = {}
    marks: dict[str, list[int]] = {"sent": [], "bounced": [], "failed": [], "skipped": skip}
    # recipient -> (bounce token, address): each message's own Return-Path (messaging.bounces)
    trails: dict[int, tuple[str, str]] = {}
    verp = isinstance(provider, email.SmtpProvider) and bounces.bounce_address() is not None
    conn: Any = None
    kept = False
    try:
        if isinstance(provider, email.SmtpProvider) and items:
            conn = email.borrow(provider)
        for recipient_id, to, data in items:
            try:
                if isinstance(provider, email.SmtpProvider):
                    envelope = None
                    if verp:
                        token = bounces.new_token()
                        envelope = bounces.envelope_for(token)
                        trails[recipient_id] = (token, to)
                    provider.send_bytes(to, data, smtp=conn, envelope_from=envelope)
                else:
                    provider.send(email_parser.BytesParser(policy=_POLICY).parsebytes(data))
            except email.EmailError as exc:
                if exc.bounced:
                    marks["bounced"].append(recipient_id)
                    refused[recipient_id] = (guests[recipient_id], to, exc.code or "5.0.0")
                elif exc.permanent:
                    marks["failed"].append(recipient_id)
                else:
                    raise
            else:
                marks["sent"].append(recipient_id)
        if conn is not None and isinstance(provider, email.SmtpProvider):
            email.give_back(provider, conn)  # the next chunk goes on over it
            kept = True
    except email.EmailError as exc:
        _mark(campaign_id, marks, trails, refused)  # what went out stays out; a retry sends the rest
        raise Retry(str(exc)) from exc
    finally:
        if conn is not None and not kept:
            email.close(conn)
    _mark(campaign_id, marks, trails, refused)
