"""Late bounces: a delivery status notification (DSN, RFC 3464) that arrives after our
SMTP server accepted the message, because the guest's mail server refused it later.

With LOYALWALLET_SMTP_BOUNCE_ADDRESS (e.g. bounce@mail.cafe.example) each message leaves
with its own envelope sender (Return-Path) bounce+<token>@mail.cafe.example (VERP): the
token is random, recorded with the keyed hash of the address the message went to
(MessageDelivery, channel "email"). The mail system hands what arrives for that address
to `loyalwallet email bounce` on standard input (see docs/email-bounces.md).

A DSN is believed only when all hold: it is a multipart/report of report-type
delivery-status; its recipient address (in the command's --to, or the DSN's
Delivered-To / X-Original-To / To) carries a token we issued; and one of its recipient
blocks says Action: failed with a 5.x.x Status for the very address the token's
message went to. Then the card send / campaign recipient is marked bounced, once.
Anything else (a forged or unknown DSN, a delay notice, an auto-reply) changes nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.campaigns.models import CampaignRecipient
from loyalwallet.config import env
from loyalwallet.messaging import suppression
from loyalwallet.messaging.models import CardSend, MessageDelivery

TOKEN_RE = re.compile(r"^[0-9a-f]{20}$")


def bounce_address() -> tuple[str, str] | None:
    """(local part, domain) of LOYALWALLET_SMTP_BOUNCE_ADDRESS, None when not set."""
    raw = (env("SMTP_BOUNCE_ADDRESS") or "").strip()
    if "@" not in raw:
        return None
    local, _, domain = raw.rpartition("@")
    return (local, domain.lower()) if local and domain else None


def address_hash(address: str) -> str:
    return suppression.key("email", address)


def new_token() -> str:
    """20 lower-case hex digits: survives mail systems that fold the local part's case."""
    return secrets.token_hex(10)


def envelope_for(token: str) -> str | None:
    """bounce+<token>@domain, or None without a bounce address."""
    where = bounce_address()
    return f"{where[0]}+{token}@{where[1]}" if where else None


def record(
    session: Session,
    merchant_id: int,
    token: str,
    to: str,
    *,
    card_send_id: int | None = None,
    campaign_id: int | None = None,
    recipient_id: int | None = None,
    now: dt.datetime | None = None,
) -> None:
    now = now or db.utcnow()
    session.add(
        MessageDelivery(
            merchant_id=merchant_id,
            channel="email",
            ref=token,
            card_send_id=card_send_id,
            campaign_id=campaign_id,
            recipient_id=recipient_id,
            address_hash=address_hash(to),
            status="sent",
            created_at=now,
            updated_at=now,
        )
    )


def record_many(
    session: Session,
    merchant_id: int,
    items: list[tuple[str, str, int]],
    *,
    campaign_id: int,
    now: dt.datetime,
) -> None:
    """`record` for a campaign chunk's messages, (token, address, recipient) each, in
    one statement."""
    if items:
        session.execute(
            insert(MessageDelivery),
            [
                {
                    "merchant_id": merchant_id,
                    "channel": "email",
                    "ref": token,
                    "campaign_id": campaign_id,
                    "recipient_id": recipient_id,
                    "address_hash": address_hash(to),
                    "status": "sent",
                    "polls": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for token, to, recipient_id in items
            ],
        )


@dataclass(frozen=True)
class Failure:
    address: str
    status: str  # the DSN's Status, e.g. 5.1.1


def token_of(address: str) -> str | None:
    """The token of bounce+<token>@domain when it is our bounce address."""
    where = bounce_address()
    if where is None:
        return None
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base, plus, token = local.partition("+")
    token = token.lower()
    if not plus or base.lower() != where[0].lower() or domain.lower() != where[1]:
        return None
    return token if TOKEN_RE.match(token) else None


def failures(message: Message) -> list[Failure]:
    """The permanently failed recipients a DSN reports (RFC 3464 §2.3)."""
    if message.get_content_type() != "multipart/report":
        return []
    if (message.get_param("report-type") or "").lower() != "delivery-status":  # type: ignore[union-attr]
        return []
    out: list[Failure] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block is about the message, the rest per recipient
            if not isinstance(block, Message):
                continue
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            if action != "failed" or not re.match(r"^5\.\d{1,3}\.\d{1,3}$", status):
                continue
            for field in ("Final-Recipient", "Original-Recipient"):
                kind, _, address = str(block.get(field, "")).partition(";")
                if kind.strip().lower() == "rfc822" and "@" in address:
                    out.append(Failure(address.strip().strip("<>"), status))
    return out


def handle(data: bytes, to: str | None = None) -> str:
    """Take one message the mail system received for the bounce address; what was done:
    "bounced", "already", or why it was ignored."""
    message = BytesParser(policy=policy.default).parsebytes(data)
    candidates = [to] if to else []
    for header in ("Delivered-To", "X-Original-To", "To"):
        candidates += [a for _, a in getaddresses([str(v) for v in message.get_all(header, [])])]
    tokens = [t for t in (token_of(a) for a in candidates if a) if t]
    if not tokens:
        return "ignored: not addressed to a bounce token"
    found = failures(message)
    if not found:
        return "ignored: not a DSN reporting a permanent failure"
    now = db.utcnow()
    with db.transaction() as session:
        row = session.scalar(
            select(MessageDelivery).where(
                MessageDelivery.channel == "email", MessageDelivery.ref == tokens[0]
            )
        )
        if row is None:
            return "ignored: unknown token"
        failure = next((f for f in found if address_hash(f.address) == row.address_hash), None)
        if failure is None:
            return "ignored: the DSN is about another address"
        if row.status == "bounced":
            return "already"
        mark(session, row, failure.status, now)
    return "bounced"


def mark(session: Session, row: MessageDelivery, status: str, now: dt.datetime) -> None:
    row.status = "bounced"
    row.code = status[:32]
    row.updated_at = now
    _suppress(session, row, status, now)
    if row.card_send_id is not None:
        session.execute(update(CardSend).where(CardSend.id == row.card_send_id).values(status="bounced"))
    if row.recipient_id is not None:
        session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.id == row.recipient_id, CampaignRecipient.status == "sent")
            .values(status="bounced", error=f"bounced later: {status}"[:200])
        )


def _suppress(session: Session, row: MessageDelivery, status: str, now: dt.datetime) -> None:
    """A late hard bounce: the address is not mailed again (messaging.suppression; the
    record's hash is the suppression's key, so the address itself is not needed)."""
    from loyalwallet.cards.models import Card

    if row.address_hash is None:
        return
    card_id = None
    if row.card_send_id is not None:
        card_id = session.scalar(select(CardSend.card_id).where(CardSend.id == row.card_send_id))
    elif row.recipient_id is not None:
        card_id = session.scalar(
            select(CampaignRecipient.card_id).where(CampaignRecipient.id == row.recipient_id)
        )
    customer_id = session.scalar(select(Card.customer_id).where(Card.id == card_id)) if card_id else None
    suppression.add(
        session, row.merchant_id, "email", row.address_hash, customer_id=customer_id, code=status, now=now
    )
