"""Apple Wallet use cases: build a card's or a coupon's pass, and the PassKit web service
(register, unregister, serials changed since a tag, latest pass).

The web service has no staff actor: a pass is found by its serial number and proven by
its authenticationToken, and everything is scoped to that pass's merchant.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import threading
import zoneinfo
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalwallet.cards.models import Card, Coupon
from loyalwallet.cards.views import card_notes, card_urls, card_view
from loyalwallet.certificates import rules as gift_rules
from loyalwallet.certificates.models import GiftCertificate
from loyalwallet.config import env, get_settings
from loyalwallet.crypto import constant_time_equal
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError
from loyalwallet.merchants.models import Location, Merchant
from loyalwallet.programs import images
from loyalwallet.programs.design import CardDesign, look_for_tier, parse_design
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import StampRules, stamp_terms, stamps_to_collect
from loyalwallet.programs.service import rules_of
from loyalwallet.text import LANGUAGES, gettext_for, money, translate, units_left
from loyalwallet.wallet.apple import credentials, passes, pkpass, updates
from loyalwallet.wallet.apple.dates import (  # noqa: F401  # re-exported: the API and tests use service.*
    SAME_SECOND_GRACE,
    http_date,
    last_modified,
    not_modified,
)
from loyalwallet.wallet.apple.gifts import GIFT_SERIAL_PREFIX, gift_id, gift_serial
from loyalwallet.wallet.apple.models import AppleCertificate, AppleRegistration

COUPON_SERIAL_PREFIX = "cpn."
DEVICE_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Apple: the token's length varies; other pass servers met tokens far longer than 64.
PUSH_TOKEN_RE = re.compile(r"^[0-9a-fA-F]{32,1000}$")
SERIAL_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PASS_TYPE_RE = re.compile(r"^pass\.[A-Za-z0-9.-]{1,250}$")


def _limit(name: str, default: int) -> int:
    return int(env(name, str(default)) or default)


def max_passes_per_device() -> int:
    return _limit("APPLE_MAX_PASSES_PER_DEVICE", 100)


def max_devices_per_pass() -> int:
    return _limit("APPLE_MAX_DEVICES_PER_PASS", 10)


def web_service_url(cert: AppleCertificate) -> str | None:
    """Where devices ask for updates. iPhones only use HTTPS: with an Apple certificate
    and a plain-HTTP base URL the pass is issued without it (it installs, without live
    updates) unless LOYALWALLET_APPLE_ALLOW_HTTP=1 (a device in developer mode)."""
    base = get_settings().base_url
    if base.startswith("https://") or cert.kind == "development" or env("APPLE_ALLOW_HTTP") == "1":
        return f"{base}/wallet/apple"
    return None


# --- the files of a look (images + localisation), prepared once ------------------------------

_filesets: OrderedDict[tuple[Any, ...], pkpass.FileSet] = OrderedDict()
_filesets_lock = threading.Lock()
_strings: dict[str, bytes] = {}


def strings_files() -> dict[str, bytes]:
    """en.lproj and ru.lproj pass.strings: the pass's labels in the iPhone's language."""
    if not _strings:
        for lang in ("en", "ru"):
            _ = gettext_for(lang)
            _strings[f"{lang}.lproj/pass.strings"] = pkpass.strings_file((s, _(s)) for s in passes.STRINGS)
    return _strings


def fileset(
    session: Session,
    program: Program,
    design: CardDesign,
    *,
    tier: str | None,
    stamps: images.Marks,
    required: images.Marks,
    coupon: bool = False,
) -> pkpass.FileSet:
    # (program id, version) names the design exactly: any design change bumps the version.
    key = (program.merchant_id, program.id, program.version, tier, stamps, required, coupon)
    with _filesets_lock:
        hit = _filesets.get(key)
        if hit is not None:
            _filesets.move_to_end(key)
            return hit
    rendered = images.card_images(
        session, program.merchant_id, design, tier=tier, stamps=stamps, required=required, coupon=coupon
    )
    files = {name: r.data for name, r in rendered.items()}
    hashes = {name: r.sha1 for name, r in rendered.items()}
    files.update(strings_files())
    built = pkpass.FileSet(files, hashes)
    with _filesets_lock:
        _filesets[key] = built
        while len(_filesets) > 512:
            _filesets.popitem(last=False)
    return built


# --- building passes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltPass:
    data: bytes
    last_modified: dt.datetime
    etag: str


def _places(session: Session, merchant_id: int, design: CardDesign, text: str) -> tuple[passes.Place, ...]:
    """The design's locations, else the merchant's own (with coordinates): at most 10."""
    if design.locations:
        return tuple(
            passes.Place(loc.latitude, loc.longitude, loc.relevant_text or text) for loc in design.locations
        )[: passes.MAX_LOCATIONS]
    rows = session.execute(
        select(Location.latitude, Location.longitude)
        .where(
            Location.merchant_id == merchant_id,
            Location.active.is_(True),
            Location.latitude.is_not(None),
            Location.longitude.is_not(None),
        )
        .order_by(Location.id)
        .limit(passes.MAX_LOCATIONS)
    ).all()
    return tuple(
        passes.Place(float(lat), float(lon), text) for lat, lon in rows if lat is not None and lon is not None
    )


def _pct(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value:g}%"


def card_facts(
    session: Session, card: Card, program: Program, merchant: Merchant, design: CardDesign
) -> passes.CardFacts:
    view = card_view(session, card, program)
    customer = view.get("customer") or {}
    next_tier = view.get("next_tier")
    urls = card_urls(card)
    return passes.CardFacts(
        kind=program.kind,
        program_name=program.name,
        serial=card.serial,
        auth_token=card.auth_token,
        code=card.code,
        balance=card.balance,
        stamps=card.stamps,
        stamps_required=view.get("stamps_required"),
        tier=card.tier,
        discount=_pct(view.get("discount_pct")),
        cashback=_pct(view.get("cashback_pct")),
        holder=customer.get("name") or None,
        next_tier=f"{next_tier['name']}: {money(next_tier['spend_needed'], merchant.currency)}"
        if next_tier
        else None,
        rewards=tuple(r["name"] for r in view.get("rewards", [])),
        stamp_terms=_stamp_terms(program, merchant),
        message=card.message,
        web_card_url=urls["web_card_url"],
        places=_places(session, card.merchant_id, design, design.logo_text or program.name),
        notes=_notes(session, card, merchant),
        stamp_kinds=tuple(
            (k["name"], k["stamps"], k["stamps_to_collect"]) for k in view.get("stamp_kinds", ())
        ),
    )


def _stamp_terms(program: Program, merchant: Merchant) -> str | None:
    """What the stamp card promises, in the merchant's language (the web card's sentence)."""
    rules = rules_of(program)
    if not isinstance(rules, StampRules):
        return None
    lang = merchant.locale if merchant.locale in ("ru", "en") else "ru"
    if rules.multi_kind:
        # Several stamp kinds: what each promises, one line each.
        return "\n".join(f"{k.name}: {translate(lang, *stamp_terms(k))}" for k in rules.stamp_kinds())
    msg, params = stamp_terms(rules)
    return translate(lang, msg, params)


def _notes(session: Session, card: Card, merchant: Merchant) -> tuple[tuple[str, str, str], ...]:
    """Other parts' lines on the card (a subscription), in the merchant's language."""
    _ = gettext_for(merchant.locale if merchant.locale in LANGUAGES else "ru")
    tz = zoneinfo.ZoneInfo(merchant.timezone)
    return tuple((n.key, n.title, units_left(n.left, n.until, tz, _)) for n in card_notes(session, card))


def card_pass_json(
    session: Session, card: Card, program: Program
) -> tuple[dict[str, Any], pkpass.FileSet, AppleCertificate]:
    """pass.json, the prepared files and the certificate of a card's pass (unsigned)."""
    cert = credentials.require_certificate(session, card.merchant_id)
    merchant = session.get(Merchant, card.merchant_id)
    assert merchant is not None
    design = parse_design(program.design)
    colours, _ = look_for_tier(design, card.tier)
    facts = card_facts(session, card, program, merchant, design)
    issuer = passes.Issuer(cert.pass_type_id, cert.team_id, merchant.name, web_service_url(cert))
    body = passes.store_card(issuer, facts, design, colours)
    # The strip's cells are the paid stamps (stamps_required - 1; programs.rules.StampRules).
    required = (
        stamps_to_collect(facts.stamps_required)
        if program.kind == "stamp" and facts.stamps_required
        else None
    )
    stamps: images.Marks = card.stamps if required else None
    marks: images.Marks = required
    if facts.stamp_kinds:
        # Several stamp kinds: a band of cups per kind on the strip.
        stamps = tuple(held for _name, held, _cells in facts.stamp_kinds)
        marks = tuple(cells for _name, _held, cells in facts.stamp_kinds)
    files = fileset(session, program, design, tier=card.tier, stamps=stamps, required=marks)
    return body, files, cert


def card_pass(session: Session, card: Card, program: Program) -> BuiltPass:
    body, files, cert = card_pass_json(session, card, program)
    data = pkpass.build(body, files, credentials.signer_for(cert))
    return BuiltPass(data, card.pass_updated_at, _etag(body, files))


def _etag(body: dict[str, Any], files: pkpass.FileSet) -> str:
    return '"' + hashlib.sha1(pkpass.manifest_of(body, files)).hexdigest() + '"'


# --- coupons ------------------------------------------------------------------------------------


def _hmac(purpose: str, message: str) -> str:
    key = get_settings().session_key
    digest = hmac.new(key, f"{purpose}:{message}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def coupon_signature(merchant_id: int, code: str) -> str:
    return _hmac("apple-coupon", f"{merchant_id}:{code}")[:22]


def coupon_pass_url(coupon: Coupon) -> str:
    """The public link to a coupon's pass: unguessable without the server's session key
    (HMAC-SHA256 over merchant and code), so printing or mailing it is safe."""
    base = get_settings().base_url
    sig = coupon_signature(coupon.merchant_id, coupon.code)
    return f"{base}/wallet/apple/coupons/{coupon.merchant_id}/{quote(coupon.code, safe='')}/{sig}/pass.pkpass"


def coupon_auth_token(coupon: Coupon) -> str:
    """The coupon pass's authenticationToken, derived (nothing to store)."""
    return _hmac("apple-coupon-auth", str(coupon.id))[:32]


def _serial_cipher() -> Cipher[modes.ECB]:
    key = hmac.new(get_settings().index_key, b"coupon-serial", hashlib.sha256).digest()
    return Cipher(algorithms.AES(key), modes.ECB())


def coupon_serial(coupon: Coupon) -> str:
    """`cpn.` and 32 hex characters: the coupon id through AES under a key derived from the
    index key. A single-block permutation: unguessable, reveals no count, and maps back to
    the id without a stored column."""
    enc = _serial_cipher().encryptor()
    return COUPON_SERIAL_PREFIX + (enc.update(coupon.id.to_bytes(16, "big")) + enc.finalize()).hex()


def _coupon_id(raw: str) -> int | None:
    if len(raw) == 32 and all(c in "0123456789abcdef" for c in raw):
        dec = _serial_cipher().decryptor()
        block = dec.update(bytes.fromhex(raw)) + dec.finalize()
        value = int.from_bytes(block, "big")
        return value if value < 2**63 else None
    # Serials of passes issued before they were random ("cpn.2"): still found.
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _offer(coupon: Coupon, currency: str) -> tuple[str, str]:
    """(label, value) of the coupon's primary field."""
    if coupon.kind == "percent_off":
        return coupon.name, f"−{coupon.value / 100:g}%"
    if coupon.kind == "fixed_off":
        return coupon.name, f"−{money(coupon.value, currency)}"
    if coupon.kind == "bonus_points":
        return coupon.name, f"+{coupon.value}"
    return passes.L_GIFT, coupon.name


def coupon_status(coupon: Coupon, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    if coupon.status != "available":
        return "used" if coupon.status == "used" else "revoked"
    if coupon.valid_until is not None and coupon.valid_until <= now:
        return "expired"
    return "available"


def coupon_pass(session: Session, coupon: Coupon) -> BuiltPass:
    """A coupon-style pass of a coupon (a campaign's offer, a stamp card's reward, an
    anonymous printed code)."""
    cert = credentials.require_certificate(session, coupon.merchant_id)
    merchant = session.get(Merchant, coupon.merchant_id)
    assert merchant is not None
    program = session.get(Program, coupon.program_id) if coupon.program_id else None
    if program is None and coupon.card_id is not None:
        card = session.get(Card, coupon.card_id)
        program = session.get(Program, card.program_id) if card else None
    if program is None:
        program = session.scalar(
            select(Program).where(Program.merchant_id == coupon.merchant_id).order_by(Program.id).limit(1)
        )
    design = parse_design(program.design if program else None)
    label, offer = _offer(coupon, merchant.currency)
    facts = passes.CouponFacts(
        serial=coupon_serial(coupon),
        auth_token=coupon_auth_token(coupon),
        code=coupon.code,
        name=label,
        offer=offer,
        status=coupon_status(coupon),
        valid_until=coupon.valid_until,
        min_amount=money(coupon.min_amount, merchant.currency) if coupon.min_amount else None,
        uses_left=max(coupon.uses_left, 0),
        program_name=program.name if program else None,
        personal=coupon.card_id is not None,
        places=_places(session, coupon.merchant_id, design, coupon.name),
    )
    issuer = passes.Issuer(cert.pass_type_id, cert.team_id, merchant.name, web_service_url(cert))
    body = passes.coupon(issuer, facts, design, design.colours)
    if program is not None:
        files = fileset(session, program, design, tier=None, stamps=None, required=None, coupon=True)
    else:  # a merchant without programs: the default look
        files = _default_coupon_files(session, coupon.merchant_id)
    data = pkpass.build(body, files, credentials.signer_for(cert))
    now = utcnow()
    expired = coupon.valid_until if coupon.valid_until and coupon.valid_until <= now else None
    changed = max(t for t in (coupon.created_at, coupon.used_at, expired) if t is not None)
    return BuiltPass(data, changed, _etag(body, files))


def _default_coupon_files(session: Session, merchant_id: int) -> pkpass.FileSet:
    design = CardDesign()
    rendered = images.card_images(session, merchant_id, design, coupon=True)
    files = {n: r.data for n, r in rendered.items()} | strings_files()
    return pkpass.FileSet(files, {n: r.sha1 for n, r in rendered.items()})


def gift_pass(session: Session, cert: GiftCertificate) -> BuiltPass:
    """A gift certificate's pass (storeCard style, passes.gift_card), signed with the
    merchant's certificate; its look is the merchant's first programme's (as coupons)."""
    apple = credentials.require_certificate(session, cert.merchant_id)
    merchant = session.get(Merchant, cert.merchant_id)
    assert merchant is not None
    program = session.scalar(
        select(Program).where(Program.merchant_id == cert.merchant_id).order_by(Program.id).limit(1)
    )
    design = parse_design(program.design if program else None)
    now = utcnow()
    status = cert.status
    if status == "active" and cert.expires_at is not None and cert.expires_at <= now:
        status = "expired"
    facts = passes.GiftFacts(
        serial=gift_serial(cert.id),
        auth_token=cert.auth_token,
        code=cert.code,
        code_display=gift_rules.grouped(cert.code),
        balance=money(cert.balance if status == "active" else 0, cert.currency, trim_zero_cents=True),
        initial=money(cert.initial_amount, cert.currency, trim_zero_cents=True),
        status=status,
        expires_at=cert.expires_at,
        message=cert.message,
        web_url=f"{get_settings().base_url}/g/{cert.public_token}",
        places=_places(session, cert.merchant_id, design, design.logo_text or merchant.name),
    )
    issuer = passes.Issuer(apple.pass_type_id, apple.team_id, merchant.name, web_service_url(apple))
    body = passes.gift_card(issuer, facts, design, design.colours)
    if program is not None:
        files = fileset(session, program, design, tier=None, stamps=None, required=None, coupon=True)
    else:
        files = _default_coupon_files(session, cert.merchant_id)
    data = pkpass.build(body, files, credentials.signer_for(apple))
    expired = cert.expires_at if cert.expires_at and cert.expires_at <= now else None
    changed = max(t for t in (cert.updated_at, expired) if t is not None)
    return BuiltPass(data, changed, _etag(body, files))


def coupon_by_link(session: Session, merchant_id: int, code: str, sig: str) -> Coupon:
    if not hmac.compare_digest(sig.encode(), coupon_signature(merchant_id, code).encode()):
        raise DomainError("not_found", "coupon not found")
    coupon = session.scalar(select(Coupon).where(Coupon.merchant_id == merchant_id, Coupon.code == code))
    if coupon is None:
        raise DomainError("not_found", "coupon not found")
    return coupon


# --- the PassKit web service --------------------------------------------------------------------


@dataclass(frozen=True)
class PassRef:
    """A pass the web service talks about: a card or a coupon."""

    merchant_id: int
    serial: str
    auth_token: str
    card: Card | None = None
    program: Program | None = None
    coupon: Coupon | None = None
    gift: GiftCertificate | None = None


def _unauthorized() -> DomainError:
    return DomainError(
        "unauthorized", "Authorization: ApplePass <authenticationToken> of this pass is required"
    )


def check_pass_type(session: Session, pass_type_id: str) -> None:
    if not PASS_TYPE_RE.match(pass_type_id) or not credentials.known_pass_type(session, pass_type_id):
        raise DomainError("not_found", "unknown pass type identifier")


def authenticate(session: Session, pass_type_id: str, serial: str, authorization: str | None) -> PassRef:
    """The pass with this serial, proven by `ApplePass <token>`. Unknown pass type: 404;
    unknown serial or wrong token: 401 (the answer does not tell which)."""
    check_pass_type(session, pass_type_id)
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme != "ApplePass" or not token or not SERIAL_RE.match(serial):
        raise _unauthorized()
    ref = find_pass(session, serial)
    if ref is None or not constant_time_equal(token, ref.auth_token):
        raise _unauthorized()
    cert = credentials.certificate_for(session, ref.merchant_id)
    if cert is None or cert.pass_type_id != pass_type_id:
        raise _unauthorized()
    return ref


def find_pass(session: Session, serial: str) -> PassRef | None:
    if serial.startswith(GIFT_SERIAL_PREFIX):
        cert_id = gift_id(serial)
        gift = session.get(GiftCertificate, cert_id) if cert_id is not None else None
        if gift is None:
            return None
        return PassRef(gift.merchant_id, serial, gift.auth_token, gift=gift)
    if serial.startswith(COUPON_SERIAL_PREFIX):
        coupon_id = _coupon_id(serial[len(COUPON_SERIAL_PREFIX) :])
        coupon = session.get(Coupon, coupon_id) if coupon_id is not None else None
        if coupon is None:
            return None
        return PassRef(coupon.merchant_id, serial, coupon_auth_token(coupon), coupon=coupon)
    row = session.execute(
        select(Card, Program).join(Program, Program.id == Card.program_id).where(Card.serial == serial)
    ).first()
    if row is None:
        return None
    card, program = row
    return PassRef(card.merchant_id, serial, card.auth_token, card=card, program=program)


def register(
    session: Session,
    device_id: str,
    pass_type_id: str,
    serial: str,
    authorization: str | None,
    push_token: Any,
) -> bool:
    """Register a device for a pass's updates. True: new (201); False: already (200)."""
    ref = authenticate(session, pass_type_id, serial, authorization)
    if not DEVICE_RE.match(device_id):
        raise DomainError("bad_request", "malformed device library identifier")
    if not isinstance(push_token, str) or not PUSH_TOKEN_RE.match(push_token):
        raise DomainError("bad_request", "pushToken must be the hexadecimal APNs device token")
    push_token = push_token.lower()
    now = utcnow()
    existing = session.scalar(
        select(AppleRegistration).where(
            AppleRegistration.device_id == device_id,
            AppleRegistration.pass_type_id == pass_type_id,
            AppleRegistration.serial == serial,
        )
    )
    if existing is not None:
        if existing.push_token != push_token:
            existing.push_token = push_token
        existing.updated_at = now
        return False
    held = session.execute(
        select(func.count())
        .select_from(AppleRegistration)
        .where(AppleRegistration.device_id == device_id, AppleRegistration.pass_type_id == pass_type_id)
    ).scalar_one()
    if held >= max_passes_per_device():
        raise DomainError("rate_limited", "this device holds too many passes of ours")
    # A pass on too many devices: the least recently seen registration gives way (a guest's
    # new phone must work; a script re-registering a pass gains nothing).
    devices = session.scalars(
        select(AppleRegistration.id)
        .where(AppleRegistration.serial == serial, AppleRegistration.pass_type_id == pass_type_id)
        .order_by(AppleRegistration.updated_at.desc(), AppleRegistration.id.desc())
    ).all()
    keep = max_devices_per_pass() - 1
    if len(devices) > keep:
        session.execute(delete(AppleRegistration).where(AppleRegistration.id.in_(devices[keep:])))
    try:
        with session.begin_nested():  # the same device may retry at the same moment
            session.add(
                AppleRegistration(
                    merchant_id=ref.merchant_id,
                    device_id=device_id,
                    pass_type_id=pass_type_id,
                    serial=serial,
                    card_id=ref.card.id if ref.card else None,
                    coupon_id=ref.coupon.id if ref.coupon else None,
                    push_token=push_token,
                    change_seq=updates.stamp(session),
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def unregister(
    session: Session, device_id: str, pass_type_id: str, serial: str, authorization: str | None
) -> None:
    authenticate(session, pass_type_id, serial, authorization)
    session.execute(
        delete(AppleRegistration).where(
            AppleRegistration.device_id == device_id,
            AppleRegistration.pass_type_id == pass_type_id,
            AppleRegistration.serial == serial,
        )
    )


def serials_since(
    session: Session, device_id: str, pass_type_id: str, tag: str | None
) -> tuple[list[str], str]:
    """Serial numbers of this device's passes that changed since `tag`, and the new tag."""
    check_pass_type(session, pass_type_id)
    if not DEVICE_RE.match(device_id):
        raise DomainError("bad_request", "malformed device library identifier")
    since = updates.parse(tag)
    now_tag = updates.current(session)  # before the read: see updates.py
    stmt = select(AppleRegistration.serial).where(
        AppleRegistration.device_id == device_id, AppleRegistration.pass_type_id == pass_type_id
    )
    if since is not None:
        stmt = stmt.where(updates.changed_since(since))
    serials = sorted(set(session.scalars(stmt).all()))
    return serials, now_tag.encode()


def build(session: Session, ref: PassRef) -> BuiltPass:
    """The current pass of a card, coupon or gift certificate the web service talks about."""
    if ref.coupon is not None:
        return coupon_pass(session, ref.coupon)
    if ref.gift is not None:
        return gift_pass(session, ref.gift)
    assert ref.card is not None and ref.program is not None
    return card_pass(session, ref.card, ref.program)
