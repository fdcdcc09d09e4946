"""Google Wallet issuers and what is built for them: the issuer of a merchant (its own or
the installation's default; the key sealed, read once and cached briefly), importing and
removing keys, and the facts the class and object builders (objects.py) are given.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.cards.models import Card
from loyalwallet.cards.views import available_rewards, card_notes, card_urls
from loyalwallet.config import env
from loyalwallet.customers.models import Customer
from loyalwallet.merchants.actors import system
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_merchant
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs import assets
from loyalwallet.programs.design import parse_design
from loyalwallet.programs.models import Program
from loyalwallet.programs.service import rules_of
from loyalwallet.text import LANGUAGES, gettext_for, units_left
from loyalwallet.wallet.google import caches, objects
from loyalwallet.wallet.google.client import Credentials
from loyalwallet.wallet.google.keys import check_issuer_id, parse_key_file
from loyalwallet.wallet.google.models import GoogleIssuer

log = logging.getLogger("loyalwallet.google")


KEY_COLUMN = "google_key"


# --- the issuer --------------------------------------------------------------------------


@dataclass(frozen=True)
class Issuer:
    row_id: int
    merchant_id: int | None  # None: the installation's default issuer
    issuer_id: str
    creds: Credentials = field(repr=False)
    development: bool

    @property
    def key_id(self) -> str:
        return self.creds.key_id

    @property
    def syncs(self) -> bool:
        """Whether to call Google: a development key only talks to a configured fake."""
        return not self.development or env("GOOGLE_API_URL") is not None


_issuers: dict[int, tuple[float, Issuer | None]] = {}
_keys: dict[tuple[int, dt.datetime], Credentials] = {}


def reset_cache() -> None:
    with caches.lock:
        _issuers.clear()
        _keys.clear()
        caches.classes_seen.clear()
        caches.assets_seen.clear()
        caches.links.clear()


def config_ttl() -> float:
    # Another process (the CLI) may change the issuer: re-read it this often.
    return float(env("GOOGLE_CONFIG_TTL", "30") or 30)


def id_prefix() -> str:
    return env("GOOGLE_ID_PREFIX", "lw") or "lw"


def has_issuer(session: Session, merchant_id: int) -> bool:
    """Whether "Add to Google Wallet" can work for this merchant (an issuer is set)."""
    return issuer_for(session, merchant_id) is not None


def issuer_for(session: Session, merchant_id: int) -> Issuer | None:
    """The issuer for this merchant (its own, else the default), cached briefly."""
    now = time.monotonic()
    cached = _issuers.get(merchant_id)
    if cached and cached[0] > now:
        return cached[1]
    row = session.scalars(
        select(GoogleIssuer)
        .where(or_(GoogleIssuer.merchant_id == merchant_id, GoogleIssuer.merchant_id.is_(None)))
        .order_by(GoogleIssuer.merchant_id.is_(None), GoogleIssuer.id.desc())
        .limit(1)
    ).first()
    issuer = None
    if row is not None:
        creds = _keys.get((row.id, row.updated_at))
        if creds is None:
            try:
                raw = crypto.open_(row.key_sealed, merchant_id=row.merchant_id or 0, column=KEY_COLUMN)
                key = parse_key_file(raw or "")
            except Exception:  # e.g. the data dir's PII key was replaced: import the key again
                log.exception("the Google issuer key (row %s) cannot be read; Google Wallet is off", row.id)
            else:
                creds = Credentials(key.email, key.key_id, key.token_uri, key.private_key)
                with caches.lock:
                    _keys[(row.id, row.updated_at)] = creds
        if creds is not None:
            issuer = Issuer(row.id, row.merchant_id, row.issuer_id, creds, row.development)
    with caches.lock:
        _issuers[merchant_id] = (now + config_ttl(), issuer)
    return issuer


def import_key(
    session: Session,
    data: bytes | str,
    issuer_id: str,
    merchant_id: int | None = None,
    *,
    development: bool = False,
) -> GoogleIssuer:
    """Store the issuer id and service-account key (sealed) for a merchant, or as the
    default (merchant_id None). Everything is checked first: a bad file stores nothing."""
    key = parse_key_file(data)
    issuer_id = check_issuer_id(issuer_id)
    if merchant_id is not None:
        get_merchant(session, merchant_id)
    now = db.utcnow()
    scope = (
        GoogleIssuer.merchant_id.is_(None) if merchant_id is None else GoogleIssuer.merchant_id == merchant_id
    )
    session.execute(delete(GoogleIssuer).where(scope))
    row = GoogleIssuer(
        merchant_id=merchant_id,
        issuer_id=issuer_id,
        service_account_email=key.email,
        key_id=key.key_id,
        key_sealed=crypto.seal(key.raw, merchant_id=merchant_id or 0, column=KEY_COLUMN),
        token_uri=key.token_uri,
        development=development,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    if merchant_id is not None:
        audit(
            session,
            system(merchant_id),
            "google.import_key",
            "google_issuer",
            issuer_id,
            {"email": key.email, "key_id": key.key_id},
        )
    reset_cache()
    if not development or env("GOOGLE_API_URL") is not None:
        for program_id, program_merchant in _programs_in_scope(session, merchant_id):
            enqueue(session, program_merchant, "google.class", {"program_id": program_id})
    return row


def remove_issuer(session: Session, merchant_id: int | None = None) -> int:
    scope = (
        GoogleIssuer.merchant_id.is_(None) if merchant_id is None else GoogleIssuer.merchant_id == merchant_id
    )
    gone = session.execute(delete(GoogleIssuer).where(scope)).rowcount  # type: ignore[attr-defined]  # a CursorResult at run time, typed as Result
    reset_cache()
    return int(gone or 0)


def _programs_in_scope(session: Session, merchant_id: int | None) -> list[tuple[int, int]]:
    stmt = select(Program.id, Program.merchant_id).where(Program.status == "active")
    if merchant_id is not None:
        stmt = stmt.where(Program.merchant_id == merchant_id)
    else:  # the default issuer serves merchants without their own
        own = select(GoogleIssuer.merchant_id).where(GoogleIssuer.merchant_id.is_not(None))
        stmt = stmt.where(Program.merchant_id.not_in(own))
    return [(r[0], r[1]) for r in session.execute(stmt.order_by(Program.id))]


def ensure_development_issuer(session: Session) -> GoogleIssuer | None:
    """The demo's issuer: a generated key, unless a default issuer exists. Returns the
    new row, or None when there already was one."""
    from loyalwallet.wallet.google.keys import development_issuer_id, development_key_file

    if session.scalar(select(GoogleIssuer.id).where(GoogleIssuer.merchant_id.is_(None))) is not None:
        return None
    return import_key(session, development_key_file(), development_issuer_id(), None, development=True)


# --- facts for the builders --------------------------------------------------------------


def merchant_gettext(merchant: Merchant) -> Any:
    return gettext_for(merchant.locale if merchant.locale in LANGUAGES else "ru")


def program_facts(
    session: Session, program: Program, merchant: Merchant | None = None
) -> objects.ProgramFacts:
    merchant = merchant or get_merchant(session, program.merchant_id)
    return objects.ProgramFacts(
        id=program.id,
        merchant_id=program.merchant_id,
        kind=program.kind,
        name=program.name,
        issuer_name=merchant.name,
        currency=merchant.currency,
        rules=rules_of(program),
        design=parse_design(program.design),
        language=merchant.locale if merchant.locale in LANGUAGES else "ru",
    )


def card_facts(session: Session, card: Card) -> objects.CardFacts:
    holder = None
    if card.customer_id is not None:
        customer = session.get(Customer, card.customer_id)
        if customer is not None and customer.erased_at is None:
            holder = crypto.open_(customer.name_enc, merchant_id=card.merchant_id, column="name")
    hero = None
    program = session.get(Program, card.program_id)
    if program is not None and program.kind == "stamp":
        # The same strip of filled and empty cups the Apple pass shows, rendered on demand.
        others = [
            int((card.kind_stamps or {}).get(str(n), 0))
            for n in range(2, 2 + len(program.rules.get("kinds") or []))
        ]
        hero = assets.stamp_strip_url(program, card.stamps, others)
    return objects.CardFacts(
        code=card.code,
        serial=card.serial,
        holder=holder,
        status=card.status,
        balance=card.balance,
        stamps=card.stamps,
        tier=card.tier,
        spend=card.spend,
        rewards=tuple(r["name"] for r in available_rewards(session, card)),
        web_url=card_urls(card)["web_card_url"],
        hero=hero,
        notes=_notes(session, card),
        kind_stamps=card.kind_stamps,
    )


def _notes(session: Session, card: Card) -> tuple[tuple[str, str, str], ...]:
    """Other parts' lines on the card (a subscription), in the merchant's language."""
    notes = card_notes(session, card)
    if not notes:
        return ()
    merchant = get_merchant(session, card.merchant_id)
    _ = merchant_gettext(merchant)
    tz = zoneinfo.ZoneInfo(merchant.timezone)
    return tuple((n.key, n.title, units_left(n.left, n.until, tz, _)) for n in notes)


def image_url(merchant_id: int) -> Any:
    return lambda sha: assets.url(merchant_id, sha)


def object_id_for(issuer: Issuer, card: Card) -> str:
    return objects.object_id(issuer.issuer_id, id_prefix(), card.serial)


def class_id_for(issuer: Issuer, program: Program, variant: str) -> str:
    return objects.class_id(issuer.issuer_id, id_prefix(), program.merchant_id, program.id, variant)


def build_object(
    session: Session, issuer: Issuer, card: Card, program: Program, merchant: Merchant | None = None
) -> dict[str, Any]:
    merchant = merchant or get_merchant(session, card.merchant_id)
    pf = program_facts(session, program, merchant)
    cid = class_id_for(issuer, program, objects.variant_for(pf.design, card.tier))
    return objects.loyalty_object(
        object_id_for(issuer, card),
        cid,
        pf,
        card_facts(session, card),
        image_url(card.merchant_id),
        merchant_gettext(merchant),
    )
