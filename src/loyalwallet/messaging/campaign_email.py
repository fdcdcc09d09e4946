"""E-mail campaigns: campaigns.delivery.CHANNELS["email"] hands a chunk of recipients
to `email.campaign` rows; the worker composes each message (the campaign's text, the
card's colours, logo and link, List-Unsubscribe headers) and sends the chunk over up to
LOYALWALLET_SMTP_CONNECTIONS SMTP connections at once (messaging.email's pool, kept for
the next chunk), rendering the next messages while the server answers. Each recipient
ends sent, bounced (the address was refused) or skipped (no address, consent withdrawn
since); a connection failure or a deferred address (4xx) marks what went out and
retries the rest, in one statement per outcome."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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

log = logging.getLogger("loyalwallet.email")

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
    """One guest's copy of a look: the address, card link, unsubscribe link, Message-ID
    put in place of the stand-ins, in one pass over the look's pieces (`pieces`)."""
    parts = pieces(template)
    values = {
        _TO_B: to.encode(),
        _CARD_B: f"{base_url().rstrip('/')}/c/{public_token}".encode(),
        _LEAVE_B: unsubscribe.url(merchant_id, customer_id).encode(),
        _MID_B: make_msgid(domain="loyalwallet").encode(),
    }
    out = [parts[0]]
    for i in range(1, len(parts), 2):
        out += (values[parts[i]], parts[i + 1])
    return b"".join(out)


_TO_B, _CARD_B, _LEAVE_B, _MID_B = (_TO.encode(), _CARD.encode(), _LEAVE.encode(), _MID.encode())
_STAND_INS = re.compile(b"(" + b"|".join(re.escape(x) for x in (_TO_B, _CARD_B, _LEAVE_B, _MID_B)) + b")")
_PIECES: dict[bytes, list[bytes]] = {}


def pieces(template: bytes) -> list[bytes]:
    """A look split at its stand-ins: text, stand-in, text, ... (kept with the look)."""
    found = _PIECES.get(template)
    if found is None:
        found = _STAND_INS.split(template)
        if len(_PIECES) >= _LOOKS_MAX:
            _PIECES.clear()
        _PIECES[template] = found
    return found


@dataclass(frozen=True)
class Job:
    """One guest's message, to be rendered (`render`) just before it is sent."""

    recipient_id: int
    to: str
    look: bytes
    merchant_id: int
    public_token: str
    customer_id: int

    def data(self) -> bytes:
        return render(self.look, self.merchant_id, self.public_token, self.customer_id, self.to)


def _prepare(campaign_id: int, recipient_ids: list[int], sender: str) -> tuple[list[Job], list[int]]:
    """The messages of the recipients still pending, and those to skip. Only the columns
    a message needs are read (whole card and guest rows cost more to load than the
    message costs to send); programs once each."""
    out: list[Job] = []
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
            out.append(Job(recipient_id, to, looks[key], merchant.id, public_token, customer_id))
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
            if c is not None:
                bounces.record_many(
                    session,
                    c.merchant_id,
                    [(token, to, r) for r, (token, to) in trails.items() if r in sent],
                    campaign_id=campaign_id,
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
    """email.campaign: send one chunk, over several SMTP connections at once."""
    campaign_id = int(msg.payload["campaign_id"])
    provider = email.get_provider()
    sender = provider.settings.sender if isinstance(provider, email.SmtpProvider) else "loyalwallet@localhost"
    jobs, skip = _prepare(campaign_id, [int(i) for i in msg.payload["recipient_ids"]], sender)
    if isinstance(provider, email.SmtpProvider):
        outcome = _send_smtp(provider, jobs, lambda sent, trails: _mark(campaign_id, {"sent": sent}, trails))
    else:
        outcome = _send_console(provider, jobs)
    outcome.marks["skipped"] = skip
    outcome.marks["sent"] = outcome.marks["sent"][outcome.marked :]
    _mark(campaign_id, outcome.marks, outcome.trails, outcome.refused)
    if outcome.error is not None:  # what went out stays out; a retry sends the rest
        raise Retry(outcome.error)


@dataclass
class Outcome:
    """What became of a chunk's messages. A recipient in none of `marks` stays pending
    (a connection failed before or while sending it, or the address was deferred with
    a 4xx): the row's retry sends it."""

    marks: dict[str, list[int]] = field(
        default_factory=lambda: {"sent": [], "bounced": [], "failed": [], "skipped": []}
    )
    # recipient -> (bounce token, address): each message's own Return-Path (messaging.bounces)
    trails: dict[int, tuple[str, str]] = field(default_factory=dict)
    # recipient -> (guest, address, SMTP code) of the addresses refused for good
    refused: dict[int, tuple[int, str, str]] = field(default_factory=dict)
    error: str | None = None  # the first failure worth a retry
    marked: int = 0  # marks["sent"][:marked] are marked sent already (MARK_EVERY)

    def settle(self, job: Job, exc: email.EmailError | None) -> bool:
        """Record one message's result; False when the connection is not to be used again."""
        if exc is None:
            self.marks["sent"].append(job.recipient_id)
        elif exc.bounced:
            self.marks["bounced"].append(job.recipient_id)
            self.refused[job.recipient_id] = (job.customer_id, job.to, exc.code or "5.0.0")
        elif exc.permanent:
            self.marks["failed"].append(job.recipient_id)
        else:
            self.error = self.error or str(exc)
            return exc.deferred  # a greylisted address: the connection goes on
        return True


def _send_console(provider: email.EmailProvider, jobs: list[Job]) -> Outcome:
    outcome = Outcome()
    for job in jobs:
        try:
            provider.send(email_parser.BytesParser(policy=_POLICY).parsebytes(job.data()))
        except email.EmailError as exc:
            if not outcome.settle(job, exc):
                break
        else:
            outcome.settle(job, None)
    return outcome


# Messages per extra connection: a short chunk is not worth another connection's greeting.
_PER_CONNECTION = 10
# Recipients marked sent while the chunk goes on, every this many messages sent: a worker
# that dies mid-chunk leaves no more than these (and those in flight) to be sent again.
MARK_EVERY = 100


def _send_smtp(
    provider: email.SmtpProvider,
    jobs: list[Job],
    mark_sent: Callable[[list[int], dict[int, tuple[str, str]]], None] | None = None,
) -> Outcome:
    """The chunk's messages over up to LOYALWALLET_SMTP_CONNECTIONS connections of the
    process's pool, each in a sender thread of its own, while this thread renders them
    into the queue the senders take from: rendering the next messages overlaps the wait
    for the server's replies, and so do the connections' waits. Each message is taken by
    exactly one sender; one whose connection fails is left pending for the row's retry
    (never handed to another connection, which could send it twice), and that sender
    stops while the others go on."""
    outcome = Outcome()
    if not jobs:
        return outcome
    try:
        conns = [email.borrow(provider)]
    except email.EmailError as exc:
        outcome.error = str(exc)
        return outcome
    while len(conns) < min(email.connections_limit(), -(-len(jobs) // _PER_CONNECTION)):
        try:
            more = email.borrow_more(provider)
        except email.EmailError:  # a connection refused: go on with those we have
            break
        if more is None:
            break
        conns.append(more)
    verp = bounces.bounce_address() is not None
    # (job, its bytes, bounce token or None); None: no more work
    work: queue.SimpleQueue[tuple[Job, bytes, str | None] | None] = queue.SimpleQueue()
    alive = [len(conns)]
    lock = threading.Lock()
    none_left = threading.Event()  # every sender stopped: rendering more is pointless

    def send_over(conn: Any) -> None:
        usable = True
        try:
            while (item := work.get()) is not None:
                job, data, token = item
                envelope = bounces.envelope_for(token) if token is not None else None
                try:
                    provider.send_bytes(job.to, data, smtp=conn, envelope_from=envelope)
                except email.EmailError as exc:
                    if not outcome.settle(job, exc):
                        usable = False
                        break
                else:
                    if token is not None:
                        outcome.trails[job.recipient_id] = (token, job.to)
                    outcome.settle(job, None)
        except BaseException as exc:  # a bug, not a refusal: nothing more on this connection
            usable = False
            outcome.error = outcome.error or f"{type(exc).__name__}: {exc}"
        finally:
            if usable:
                email.give_back(provider, conn)
            else:
                email.close(conn)
                with lock:
                    alive[0] -= 1
                    if alive[0] == 0:
                        none_left.set()

    senders = [
        threading.Thread(target=send_over, args=(conn,), name=f"smtp-send-{i}", daemon=True)
        for i, conn in enumerate(conns)
    ]
    for t in senders:
        t.start()
    try:
        for job in jobs:
            if none_left.is_set():
                break
            work.put((job, job.data(), bounces.new_token() if verp else None))
    except Exception as exc:  # what was sent is still marked (no second copy on the retry)
        outcome.error = outcome.error or f"{type(exc).__name__}: {exc}"
    finally:
        for _ in senders:
            work.put(None)
        while running := [t for t in senders if t.is_alive()]:
            running[0].join(0.1)
            if mark_sent is not None and len(outcome.marks["sent"]) - outcome.marked >= MARK_EVERY:
                _mark_progress(outcome, mark_sent)
    return outcome


def _mark_progress(
    outcome: Outcome, mark_sent: Callable[[list[int], dict[int, tuple[str, str]]], None]
) -> None:
    """Mark the messages sent so far (a crash after this does not send them again)."""
    done = outcome.marks["sent"][outcome.marked :]  # the senders only append
    try:
        mark_sent(done, {r: outcome.trails[r] for r in done if r in outcome.trails})
    except Exception:  # the database is away: they are marked with the rest at the end
        log.warning("e-mail campaign: marking sent recipients failed", exc_info=True)
        return
    outcome.marked += len(done)
