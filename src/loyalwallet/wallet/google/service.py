"""Google Wallet use cases: issuer settings, save links, syncing classes and objects,
campaign messages, status.

Who talks to Google, and when:
- a card's save link is signed once, at the first write transaction that shows the
  card with Google configured (enrolment, a purchase), and cached in google_objects.
  card_view never signs again and never signs inside a read transaction;
- making the link also queues `google.patch`: the object is inserted at Google right
  away and patched on every later change of the card (handlers.py), because without
  Google's save callbacks we cannot know whether the guest saved it;
- whether a guest saved it shows in the object's read-only `hasUsers`, recorded from
  every insert/patch/addMessage answer (saved_values); objects that do not change are
  asked about now and then by saves.py;
- classes are upserted before objects that use them, and only when their body changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, delete, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.cards.models import Card, Coupon
from loyalwallet.cards.views import available_rewards, card_urls
from loyalwallet.config import env, get_settings
from loyalwallet.customers.models import Customer
from loyalwallet.db import UTCDateTime
from loyalwallet.errors import DomainError
from loyalwallet.merchants.actors import system
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_merchant
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs import assets
from loyalwallet.programs.design import parse_design
from loyalwallet.programs.models import Asset, Program
from loyalwallet.programs.service import rules_of
from loyalwallet.text import LANGUAGES, gettext_for
from loyalwallet.wallet.google import objects, savelink
from loyalwallet.wallet.google.client import Credentials, GoogleApiError, WalletClient
from loyalwallet.wallet.google.images import default_logo
from loyalwallet.wallet.google.keys import check_issuer_id, parse_key_file
from loyalwallet.wallet.google.models import GoogleClass, GoogleIssuer, GoogleObject

log = logging.getLogger("loyalwallet.google")

KEY_COLUMN = "google_key"
TOPICS = ("google.patch", "google.class", "google.message", "google.check")
# Google: at most 3 notifying messages per pass in 24 hours; more go as plain TEXT.
NOTIFY_PER_DAY = 3
# Google keeps at most 10 messages on an object; the oldest of ours make room.
MAX_MESSAGES = 10


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
# Class id -> (content hash recorded as at Google, until when to trust that): spares
# every object sync its google_classes lookup. Only for GOOGLE_CONFIG_TTL seconds, as
# another process may change a class; a new design changes the hash anyway.
_classes_seen: dict[str, tuple[str, float]] = {}
_assets_seen: set[tuple[int, str]] = set()  # (merchant id, sha256) of stored assets
_lock = threading.Lock()


def reset_cache() -> None:
    with _lock:
        _issuers.clear()
        _keys.clear()
        _classes_seen.clear()
        _assets_seen.clear()
        _links.clear()


def _ttl() -> float:
    # Another process (the CLI) may change the issuer: re-read it this often.
    return float(env("GOOGLE_CONFIG_TTL", "30") or 30)


def id_prefix() -> str:
    return env("GOOGLE_ID_PREFIX", "lw") or "lw"


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
                with _lock:
                    _keys[(row.id, row.updated_at)] = creds
        if creds is not None:
            issuer = Issuer(row.id, row.merchant_id, row.issuer_id, creds, row.development)
    with _lock:
        _issuers[merchant_id] = (now + _ttl(), issuer)
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


def _gettext(merchant: Merchant) -> Any:
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
        hero = assets.stamp_strip_url(program, card.stamps)
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
    )


def _image_url(merchant_id: int) -> Any:
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
        _image_url(card.merchant_id),
        _gettext(merchant),
    )


# --- the save link -----------------------------------------------------------------------


def _insert_ignoring_conflict(session: Session, model: Any, values: dict[str, Any], key: list[str]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=key))


_LINK = select(
    GoogleObject.object_id, GoogleObject.save_jwt, GoogleObject.jwt_key_id, GoogleObject.inserted
).where(GoogleObject.card_id == bindparam("card_id"))
_links: dict[int, tuple[str, str, str]] = {}  # card id -> (object id, key id, save JWT)
LINKS_CACHED = 20_000


def _remember(card_id: int, oid: str, key_id: str, token: str) -> None:
    if len(_links) >= LINKS_CACHED:
        _links.clear()
    _links[card_id] = (oid, key_id, token)


def save_link(session: Session, card: Card, program: Program, issuer: Issuer, *, create: bool) -> str | None:
    """The card's https://pay.google.com/gp/v/save/<JWT> link: the cached one, or (when
    `create` and the session may write) a newly signed one. None when there is none yet."""
    # The hot path (every POS answer shows the card): a signed link stays valid for as
    # long as the object id and the key are the same, so it is remembered in memory too.
    oid = object_id_for(issuer, card)
    known = _links.get(card.id)
    if known is not None and known[0] == oid and known[1] == issuer.key_id:
        return savelink.save_base() + known[2]
    row = session.execute(_LINK, {"card_id": card.id}).first()
    if row is not None and row.object_id == oid and row.save_jwt and row.jwt_key_id == issuer.key_id:
        _remember(card.id, oid, issuer.key_id, row.save_jwt)
        return savelink.save_base() + row.save_jwt
    if not create:
        return None
    # No personal data in links (they travel by SMS, mail, browser history): the holder's
    # name reaches Google over REST only, with the insert queued below.
    obj = {k: v for k, v in build_object(session, issuer, card, program).items() if k != "accountName"}
    token: str | None = _sign(issuer, [obj])
    kind: str | None = "full"
    # (A development key cannot insert anything: it keeps the long link.)
    if len(token or "") > savelink.max_jwt_length() and issuer.syncs:
        # Too long for a URL: the object goes to Google over REST first, then the link
        # carries only its id (made by sync_card once the insert succeeded).
        inserted = row is not None and row.inserted and row.object_id == oid
        token = _sign(issuer, [savelink.reference(obj)]) if inserted else None
        kind = "ref" if inserted else None
    now = db.utcnow()
    if row is None:
        _insert_ignoring_conflict(
            session,
            GoogleObject,
            {
                "card_id": card.id,
                "merchant_id": card.merchant_id,
                "object_id": oid,
                "save_jwt": token,
                "jwt_key_id": issuer.key_id if token else None,
                "jwt_kind": kind,
                "inserted": False,
                "synced_version": 0,
                "messages": [],
                "notified_at": [],
                "created_at": now,
                "updated_at": now,
            },
            ["card_id"],
        )
    else:
        values: dict[str, Any] = {
            "save_jwt": token,
            "jwt_key_id": issuer.key_id,
            "jwt_kind": kind,
            "updated_at": now,
        }
        if row.object_id != oid:  # another issuer: a new object at Google (nobody saved it yet)
            values.update(
                object_id=oid,
                inserted=False,
                class_id=None,
                synced_hash=None,
                messages=[],
                notified_at=[],
                has_users=False,
                saved_at=None,
                checked_at=None,
            )
        session.execute(update(GoogleObject).where(GoogleObject.card_id == card.id).values(**values))
    if issuer.syncs:
        enqueue(session, card.merchant_id, "google.patch", {"card_id": card.id, "reason": "link"})
    if token is None:
        return None
    _remember(card.id, oid, issuer.key_id, token)  # valid even if this transaction rolls back
    return savelink.save_base() + token


def _sign(issuer: Issuer, objs: list[dict[str, Any]]) -> str:
    return savelink.sign(
        email=issuer.creds.email,
        key_id=issuer.key_id,
        private_key=issuer.creds.private_key,
        base_url=get_settings().base_url,
        objects=objs,
    )


def card_view_hook(session: Session, card: Card, program: Program, urls: dict[str, str]) -> None:
    """A card-view hook (wiring.CARD_URL_HOOKS): put the signed save link in the card's view.

    A Google problem (a damaged stored key, a bug) must never fail the purchase that
    shows the card: the link is made in a savepoint, and on any error the card keeps
    its redirect link, which retries later."""
    try:
        issuer = issuer_for(session, card.merchant_id)
        if issuer is None:
            return
        link = save_link(session, card, program, issuer, create=False)
        if link is None and session.info.get("writable"):
            with session.begin_nested():
                link = save_link(session, card, program, issuer, create=True)
    except Exception:
        log.exception("no Google save link for card %s; it shows the redirect link", card.id)
        return
    if link:
        urls["google_save_url"] = link


# --- syncing with Google -----------------------------------------------------------------


# What a sync reads, in one round trip: the object with its card, and for a full sync
# also the program, merchant, guest and the card's reward count (session.get of each is
# then served from the identity map, and available_rewards skips its query at 0).
_REWARDS = (
    select(func.count())
    .where(Coupon.card_id == Card.id, Coupon.status == "available")
    .correlate(Card)
    .scalar_subquery()
)
_OBJECT = select(GoogleObject, Card).join(Card, Card.id == GoogleObject.card_id)
_OBJECT_FULL = (
    select(GoogleObject, Card, Program, Merchant, Customer, _REWARDS)
    .join(Card, Card.id == GoogleObject.card_id)
    .join(Program, Program.id == Card.program_id)
    .join(Merchant, Merchant.id == Card.merchant_id)
    .outerjoin(Customer, Customer.id == Card.customer_id)
)


def _load(session: Session, card_id: int, *, full: bool, lock: bool) -> GoogleObject | None:
    stmt = (_OBJECT_FULL if full else _OBJECT).where(GoogleObject.card_id == card_id)
    if lock:
        stmt = stmt.with_for_update(of=GoogleObject, skip_locked=True)
    row = session.execute(stmt).first()
    if row is None:
        return None
    if full:
        session.info.setdefault("rewards_hint", {})[card_id] = row[5]
    return row[0]


@contextmanager
def _object_session(card_id: int, *, full: bool = False) -> Iterator[tuple[Session, bool]]:
    """The session a sync reads (and on PostgreSQL also writes) in; yields (session, locked).
    The object and its card (`full`: and the rest build_object needs) are loaded.

    PostgreSQL: one transaction holding the google_objects row lock across the calls to
    Google, so two workers never send one card's versions out of order; a row locked by
    another worker is retried shortly. SQLite: a read transaction (there is one writer
    at a time anyway, and a write transaction would block every writer during a call)."""
    if db.is_sqlite():
        with db.read() as session:
            _load(session, card_id, full=full, lock=False)
            yield session, False
        return
    with db.transaction() as session:
        got = _load(session, card_id, full=full, lock=True)
        if got is None and session.get(GoogleObject, card_id) is not None:
            from loyalwallet.outbox.handlers import Retry

            raise Retry("another worker is syncing this card", after=2.0)
        yield session, True


@contextmanager
def _writer(session: Session, locked: bool) -> Iterator[Session]:
    if locked:
        yield session
    else:
        with db.transaction() as write:
            yield write


@lru_cache(maxsize=256)
def _default_logo(text: str, background: str, foreground: str) -> tuple[bytes, str]:
    png = default_logo(text, background, foreground)
    return png, hashlib.sha256(png).hexdigest()


def _logo_url(session: Session, program: Program, pf: objects.ProgramFacts) -> str:
    if pf.design.images.logo:
        return assets.url(program.merchant_id, pf.design.images.logo)
    png, sha = _default_logo(
        pf.design.logo_text or pf.name, pf.design.colours.background, pf.design.colours.foreground
    )
    # Assets are content-addressed and never deleted: once seen, no need to look again.
    if (program.merchant_id, sha) in _assets_seen:
        return assets.url(program.merchant_id, sha)
    exists = session.scalar(
        select(Asset.id).where(Asset.merchant_id == program.merchant_id, Asset.sha256 == sha)
    )
    if exists is None:
        try:
            with db.transaction() as write:
                assets.store(write, program.merchant_id, png)
        except IntegrityError:  # stored by another worker meanwhile
            pass
    else:
        with _lock:
            if len(_assets_seen) >= 10_000:
                _assets_seen.clear()
            _assets_seen.add((program.merchant_id, sha))
    return assets.url(program.merchant_id, sha)


def _class_bodies(
    session: Session, issuer: Issuer, program: Program, only: str | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """(class id, variant, body) of the program's classes (or of one variant)."""
    merchant = get_merchant(session, program.merchant_id)
    pf = program_facts(session, program, merchant)
    logo = _logo_url(session, program, pf)
    out = []
    for variant, tier in objects.variants(pf.design, pf.rules).items():
        if only is not None and variant != only:
            continue
        cid = class_id_for(issuer, program, variant)
        body = objects.loyalty_class(cid, pf, tier, logo, _image_url(program.merchant_id), _gettext(merchant))
        out.append((cid, variant, body))
    return out


def _push_classes(
    session: Session, client: WalletClient, program: Program, bodies: list[tuple[str, str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Upsert classes whose body changed; returns the rows to record."""
    done = []
    now = time.monotonic()
    for cid, variant, body in bodies:
        digest = objects.content_hash(body)
        seen = _classes_seen.get(cid)
        if seen is not None and seen[0] == digest and seen[1] > now:
            continue  # this body is at Google: recorded so, a moment ago (see _classes_seen)
        row = session.get(GoogleClass, cid)
        if row is not None and row.inserted and row.synced_hash == digest:
            _class_seen(cid, digest)
            continue
        client.upsert(
            "loyaltyClass",
            body,
            objects.patch_body(body, objects.CLASS_OPTIONAL),
            exists=row is not None and row.inserted,
        )
        _class_seen(cid, digest)
        done.append(
            {
                "class_id": cid,
                "merchant_id": program.merchant_id,
                "program_id": program.id,
                "variant": variant,
                "inserted": True,
                "synced_hash": digest,
                "updated_at": db.utcnow(),
            }
        )
    return done


def _class_seen(class_id: str, digest: str) -> None:
    with _lock:
        if len(_classes_seen) >= 10_000:
            _classes_seen.clear()
        _classes_seen[class_id] = (digest, time.monotonic() + _ttl())


def _record_classes(session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for values in rows:
        stmt = insert(GoogleClass).values(**values)
        changes = {k: values[k] for k in ("inserted", "synced_hash", "updated_at")}
        session.execute(stmt.on_conflict_do_update(index_elements=["class_id"], set_=changes))


def sync_program(program_id: int) -> int:
    """Upsert every class of a program. Returns how many were sent."""
    with db.read() as session:
        program = session.get(Program, program_id)
        if program is None:
            return 0
        issuer = issuer_for(session, program.merchant_id)
        if issuer is None or not issuer.syncs:
            return 0
        bodies = _class_bodies(session, issuer, program)
        rows = _push_classes(session, WalletClient(issuer.creds), program, bodies)
    with db.transaction() as session:
        _record_classes(session, rows)
    return len(rows)


def sync_card(card_id: int) -> str:
    """Bring the card's object (and its class) at Google up to date. Returns what was
    done: "skipped" (nothing to do or Google not set up), "unchanged", "insert", "patch"."""
    with _object_session(card_id, full=True) as (session, locked):
        row = session.get(GoogleObject, card_id)
        card = session.get(Card, card_id)
        if row is None or card is None:
            return "skipped"
        program = session.get(Program, card.program_id)
        assert program is not None
        issuer = issuer_for(session, card.merchant_id)
        if issuer is None or not issuer.syncs:
            return "skipped"
        client = WalletClient(issuer.creds)
        merchant = get_merchant(session, card.merchant_id)
        obj = build_object(session, issuer, card, program, merchant)
        variant = objects.variant_for(parse_design(program.design), card.tier)
        class_rows = _push_classes(session, client, program, _class_bodies(session, issuer, program, variant))
        digest = objects.content_hash(obj)
        same_object = row.object_id == obj["id"]
        answer: dict[str, Any] | None = None
        if same_object and row.inserted and row.synced_hash == digest:
            verb = "unchanged"
        else:
            exists = same_object and row.inserted
            try:
                verb, answer = client.upsert(
                    "loyaltyObject", obj, objects.patch_body(obj, objects.OBJECT_OPTIONAL), exists=exists
                )
            except GoogleApiError as exc:
                moving = exists and row.class_id is not None and row.class_id != obj["classId"]
                if exc.status != 400 or not moving:
                    raise
                # Google would not move the object to its tier's class: keep it in its
                # class and still bring everything else up to date.
                log.warning("Google refused to move %s to %s: %s", obj["id"], obj["classId"], exc.message)
                obj = {**obj, "classId": row.class_id}
                verb, answer = client.upsert(
                    "loyaltyObject", obj, objects.patch_body(obj, objects.OBJECT_OPTIONAL), exists=True
                )
        now = db.utcnow()
        values: dict[str, Any] = {
            "object_id": obj["id"],
            "inserted": True,
            "class_id": obj["classId"],
            "synced_hash": digest,
            "synced_version": card.version,
            "synced_at": now,
            "updated_at": now,
            **saved_values(answer, now),
        }
        if not row.save_jwt or row.jwt_key_id != issuer.key_id or not same_object:
            # The link was waiting for this insert (its JWT carries only the id).
            values.update(
                save_jwt=_sign(issuer, [savelink.reference(obj)]), jwt_key_id=issuer.key_id, jwt_kind="ref"
            )
        if not same_object:  # a new object: the old one's messages and save stay with it
            values.update(messages=[], notified_at=[], saved_at=now if values.get("has_users") else None)
        with _writer(session, locked) as write:
            _record_classes(write, class_rows)
            write.execute(update(GoogleObject).where(GoogleObject.card_id == card_id).values(**values))
    return verb


def send_message(card_id: int, merchant_id: int | None, header: str, body: str, message_id: str) -> str:
    """addMessage on the card's object (the campaign push contract). Returns "sent",
    "sent_text" (over the notification limit: shown without a notification), "duplicate"
    (already added), or "skipped" (the card has no Google link, or Google is not set up).

    One transaction (PostgreSQL; SQLite: a read and a write) for the usual case: the
    checks are made under the object's lock, not in a read of their own first."""
    synced = False
    while True:
        with _object_session(card_id) as (session, locked):
            card = session.get(Card, card_id)
            if card is None or (merchant_id is not None and card.merchant_id != merchant_id):
                raise DomainError("not_found", "card not found")
            row = session.get(GoogleObject, card_id)
            if row is None:
                return "skipped"
            issuer = issuer_for(session, card.merchant_id)
            if issuer is None or not issuer.syncs:
                return "skipped"
            if synced or (row.inserted and row.object_id == object_id_for(issuer, card)):
                return _send_message(session, locked, issuer, card, row, header, body, message_id)
        # Not at Google yet (or under another issuer's id): insert it first, outside the lock.
        sync_card(card_id)
        synced = True


def _send_message(
    session: Session,
    locked: bool,
    issuer: Issuer,
    card: Card,
    row: GoogleObject,
    header: str,
    body: str,
    message_id: str,
) -> str:
    card_id = card.id
    if any(m.get("id") == message_id for m in row.messages or []):
        return "duplicate"
    client = WalletClient(issuer.creds)
    now = db.utcnow()
    since = now - dt.timedelta(hours=24)
    recent = [t for t in (row.notified_at or []) if dt.datetime.fromisoformat(t) > since]
    notify = len(recent) < NOTIFY_PER_DAY
    message = {
        "id": message_id,
        "header": header,
        "body": body,
        "messageType": "TEXT_AND_NOTIFY" if notify else "TEXT",
    }
    kept = list(row.messages or [])
    answer: dict[str, Any] | None = None
    if len(kept) >= MAX_MESSAGES:
        kept = kept[-(MAX_MESSAGES - 1) :]
        answer = client.patch("loyaltyObject", row.object_id, {"messages": kept})
    oid = row.object_id

    def reinsert() -> None:  # deleted at Google meanwhile: insert it (with our messages) again
        program = session.get(Program, card.program_id)
        assert program is not None
        obj = {**build_object(session, issuer, card, program), "messages": kept}
        client.upsert("loyaltyObject", obj, obj, exists=False)

    try:
        added = _add_message(client, oid, message, reinsert)
    except GoogleApiError as exc:
        if not (notify and exc.status == 429):
            raise
        # Google counts notifications too; over its limit the message still goes, silently.
        notify = False
        message["messageType"] = "TEXT"
        added = _add_message(client, oid, message, reinsert)
    if isinstance(added.get("resource"), dict):  # AddMessageResponse: the updated object
        answer = added["resource"]
    if notify:
        recent.append(now.isoformat())
    with _writer(session, locked) as write:
        write.execute(
            update(GoogleObject)
            .where(GoogleObject.card_id == card_id)
            .values(
                messages=[*kept, message][-MAX_MESSAGES:],
                notified_at=recent,
                updated_at=now,
                **saved_values(answer, now),
            )
        )
    return "sent" if notify else "sent_text"


def _add_message(client: WalletClient, oid: str, message: dict[str, Any], reinsert: Any) -> dict[str, Any]:
    try:
        return client.add_message("loyaltyObject", oid, message)
    except GoogleApiError as exc:
        if exc.status != 404:
            raise
        reinsert()
        return client.add_message("loyaltyObject", oid, message)


# --- saves -------------------------------------------------------------------------------


def saved_values(answer: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
    """The google_objects columns an object Google answered with (insert, patch, get,
    addMessage) sets: its read-only `hasUsers` (a guest saved it; absent means false, as
    JSON answers may leave out default values) and when we learnt it; `saved_at` keeps
    the first time it was seen true. Nothing when there was no answer."""
    if not isinstance(answer, dict) or not answer.get("id"):
        return {}
    return save_columns(bool(answer.get("hasUsers")), now)


def save_columns(has_users: bool, now: dt.datetime) -> dict[str, Any]:
    if not has_users:
        return {"has_users": False, "checked_at": now}
    return {
        "has_users": True,
        "checked_at": now,
        "saved_at": func.coalesce(GoogleObject.saved_at, literal(now, UTCDateTime())),
    }


# --- status ------------------------------------------------------------------------------


def status(session: Session, merchant_id: int | None = None) -> dict[str, Any]:
    """What an owner or operator needs to see: the issuer, objects, failed deliveries."""
    issuers = session.scalars(
        select(GoogleIssuer).where(
            GoogleIssuer.merchant_id.is_(None)
            if merchant_id is None
            else GoogleIssuer.merchant_id == merchant_id
        )
    ).all()
    if merchant_id is not None and not issuers:
        issuers = session.scalars(select(GoogleIssuer).where(GoogleIssuer.merchant_id.is_(None))).all()

    def scoped(stmt: Any, column: Any) -> Any:
        return stmt if merchant_id is None else stmt.where(column == merchant_id)

    objects_total = session.scalar(
        scoped(select(func.count()).select_from(GoogleObject), GoogleObject.merchant_id)
    )
    objects_inserted = session.scalar(
        scoped(select(func.count()).where(GoogleObject.inserted.is_(True)), GoogleObject.merchant_id)
    )
    objects_saved = session.scalar(
        scoped(select(func.count()).where(GoogleObject.has_users.is_(True)), GoogleObject.merchant_id)
    )
    classes = session.scalar(scoped(select(func.count()).select_from(GoogleClass), GoogleClass.merchant_id))
    outbox = {
        st: session.scalar(
            scoped(
                select(func.count()).where(OutboxMessage.topic.in_(TOPICS), OutboxMessage.status == st),
                OutboxMessage.merchant_id,
            )
        )
        for st in ("pending", "dead")
    }
    failures = session.execute(
        scoped(
            select(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.payload, OutboxMessage.last_error)
            .where(OutboxMessage.topic.in_(TOPICS), OutboxMessage.status == "dead")
            .order_by(OutboxMessage.id.desc())
            .limit(5),
            OutboxMessage.merchant_id,
        )
    ).all()
    return {
        "configured": bool(issuers),
        "issuers": [
            {
                "scope": "default" if i.merchant_id is None else f"merchant {i.merchant_id}",
                "issuer_id": i.issuer_id,
                "service_account": i.service_account_email,
                "key_id": i.key_id,
                "development": i.development,
                "updated_at": i.updated_at.isoformat(),
            }
            for i in issuers
        ],
        "classes": int(classes or 0),
        "objects": int(objects_total or 0),
        "objects_at_google": int(objects_inserted or 0),
        "objects_saved": int(objects_saved or 0),
        "deliveries_pending": int(outbox["pending"] or 0),
        "deliveries_failed": int(outbox["dead"] or 0),
        "recent_failures": [
            {"id": f.id, "topic": f.topic, "card_id": (f.payload or {}).get("card_id"), "error": f.last_error}
            for f in failures
        ],
    }
