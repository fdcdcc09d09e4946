"""Merchants, locations, staff and API keys: creation, lookup, the audit log."""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from loyalwallet import crypto
from loyalwallet.caches import LRU, size
from loyalwallet.db import for_update, utcnow
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import (
    ROLES,
    ApiKey,
    AuditLog,
    Location,
    Merchant,
    Staff,
    StaffLocation,
)
from loyalwallet.merchants.passwords import hash_password

API_KEY_PREFIX = "lw_"


def validate_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Explained(
            "validation_error", "unknown time zone {name!r}", name=name, extra={"field": "timezone"}
        ) from None
    return name


def validate_currency(code: str) -> str:
    if len(code) != 3 or not code.isalpha():
        raise DomainError("validation_error", "currency must be an ISO 4217 code", field="currency")
    return code.upper()


def create_merchant(
    session: Session,
    name: str,
    currency: str = "RUB",
    timezone: str = "Europe/Moscow",
    locale: str = "ru",
) -> Merchant:
    name = name.strip()
    if not name:
        raise DomainError("validation_error", "a merchant needs a name", field="name")
    merchant = Merchant(
        name=name,
        currency=validate_currency(currency),
        timezone=validate_timezone(timezone),
        locale=locale,
        settings={},
    )
    session.add(merchant)
    session.flush()
    return merchant


def get_merchant(session: Session, merchant_id: int) -> Merchant:
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise not_found("merchant")
    return merchant


# A sale above this (minor units) asks the cashier to confirm it a second time:
# merchant.settings["confirm_sale_above"], 10 000.00 unless the owner set another.
CONFIRM_SALE_ABOVE = 1_000_000
CONFIRM_SALE_ABOVE_MAX = 10**11


def confirm_sale_above(merchant: Merchant) -> int:
    value = (merchant.settings or {}).get("confirm_sale_above")
    return int(value) if isinstance(value, int) and value > 0 else CONFIRM_SALE_ABOVE


def set_confirm_sale_above(session: Session, actor: Actor, minor: int) -> Merchant:
    """The owner's threshold of a large sale at the cashier page (audited)."""
    actor.require("owner")
    if not 1 <= minor <= CONFIRM_SALE_ABOVE_MAX:
        raise DomainError(
            "validation_error",
            "the threshold is more than zero and at most 1 000 000 000",
            field="confirm_sale_above",
        )
    merchant = get_merchant(session, actor.merchant_id)
    before = confirm_sale_above(merchant)
    merchant.settings = {**(merchant.settings or {}), "confirm_sale_above": minor}
    audit(
        session,
        actor,
        "merchant.confirm_sale_above",
        "merchant",
        merchant.id,
        {"before": before, "after": minor},
    )
    return merchant


def merchant_tz(merchant: Merchant) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(merchant.timezone)


# --- locations -------------------------------------------------------------------------


def create_location(
    session: Session,
    actor: Actor,
    name: str,
    address: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    phone: str | None = None,
) -> Location:
    actor.require("owner")
    # One location per name: the merchant's row is locked first, so a form sent twice
    # (a double click, a retry) cannot add the same café twice.
    session.execute(for_update(select(Merchant.id).where(Merchant.id == actor.merchant_id)))
    wanted = name.strip().casefold()
    for existing in list_locations(session, actor.merchant_id):
        if existing.name.strip().casefold() == wanted:
            if existing.active and (existing.address or None) == (address or None):
                return existing  # the same location sent again: already there
            raise DomainError(
                "conflict",
                "a location with this name exists (an archived one can be restored)"
                if not existing.active
                else "a location with this name exists",
                field="name",
            )
    location = Location(
        merchant_id=actor.merchant_id,
        name=name,
        address=address,
        latitude=latitude,
        longitude=longitude,
        phone=phone,
    )
    session.add(location)
    session.flush()
    audit(session, actor, "location.create", "location", location.id, {"name": name})
    return location


def get_location(session: Session, merchant_id: int, location_id: int) -> Location:
    location = session.get(Location, location_id)
    if location is None or location.merchant_id != merchant_id:
        raise not_found("location")
    return location


def list_locations(session: Session, merchant_id: int, *, active_only: bool = False) -> list[Location]:
    """The merchant's locations in the order they were added."""
    stmt = select(Location).where(Location.merchant_id == merchant_id)
    if active_only:
        stmt = stmt.where(Location.active.is_(True))
    return list(session.scalars(stmt.order_by(Location.id)))


# --- API keys --------------------------------------------------------------------------


def create_api_key(
    session: Session,
    merchant_id: int,
    name: str,
    role: str,
    location_id: int | None = None,
    actor: Actor | None = None,
) -> tuple[ApiKey, str]:
    """Returns the row and the key itself, which is shown once and never stored."""
    if role not in ROLES:
        raise Explained(
            "validation_error", "role must be one of {roles}", roles=", ".join(ROLES), extra={"field": "role"}
        )
    if actor is not None:
        actor.require("owner")
    if location_id is not None:
        get_location(session, merchant_id, location_id)
    plain = API_KEY_PREFIX + crypto.token(32)
    key = ApiKey(
        merchant_id=merchant_id,
        name=name,
        prefix=plain[:10],
        key_hash=crypto.sha256_hex(plain),
        role=role,
        location_id=location_id,
    )
    session.add(key)
    session.flush()
    if actor is not None:
        audit(session, actor, "api_key.create", "api_key", key.id, {"name": name, "role": role})
    return key, plain


def list_api_keys(session: Session, merchant_id: int) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.merchant_id == merchant_id).order_by(ApiKey.id)))


def revoke_api_key(session: Session, actor: Actor, key_id: int) -> ApiKey:
    actor.require("owner")
    key = session.get(ApiKey, key_id)
    if key is None or key.merchant_id != actor.merchant_id:
        raise not_found("API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit(session, actor, "api_key.revoke", "api_key", key.id, {"name": key.name})
    _key_cache.clear()
    return key


class _KeyCache:
    """API keys resolved in the last few seconds. A POS sends the same key on every
    request; this saves a query each time. Revocation here clears it at once; other
    processes see a revocation within TTL seconds."""

    TTL = 5.0

    def __init__(self) -> None:
        # Least recently used first out when full (LOYALWALLET_CACHE_API_KEYS).
        self._items: LRU[str, tuple[float, Actor | None]] = LRU(size("API_KEYS", 10000))
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> tuple[bool, Actor | None]:
        with self._lock:
            item = self._items.get(key_hash)
        if item is None or item[0] < time.monotonic():
            return False, None
        return True, item[1]

    def put(self, key_hash: str, actor: Actor | None) -> None:
        with self._lock:
            self._items[key_hash] = (time.monotonic() + self.TTL, actor)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_key_cache = _KeyCache()


# Where api.deps.check_before_body (run by the Guard) leaves, in the request's scope
# state, the actor of its API key when the key cache knew it: the fast paths take it
# from there instead of hashing and looking the key up again.
KEY_ACTOR = "api_key_actor"


def cached_api_key_actor(plain: str) -> tuple[bool, Actor | None]:
    """(True, actor-or-None) when the answer for this key is known without the database."""
    if not plain.startswith(API_KEY_PREFIX) or len(plain) > 100:
        return True, None
    return _key_cache.get(crypto.sha256_hex(plain))


def _note_key_use(session: Session, key_id: int) -> None:
    """Best effort: on SQLite a read transaction cannot take the write lock while another
    request writes (SQLITE_BUSY at once, the busy timeout does not apply), and a POS's
    purchase must never fail for the key's "last used" time."""
    try:
        with session.begin_nested():
            session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
    except OperationalError:
        pass


def actor_for_api_key(session: Session, plain: str) -> Actor | None:
    if not plain.startswith(API_KEY_PREFIX) or len(plain) > 100:
        return None
    key_hash = crypto.sha256_hex(plain)
    hit, actor = _key_cache.get(key_hash)
    if hit:
        return actor
    row = session.execute(
        select(ApiKey.id, ApiKey.merchant_id, ApiKey.role, ApiKey.location_id, ApiKey.name).where(
            ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)
        )
    ).first()
    actor = None
    if row is not None:
        actor = Actor(
            merchant_id=row.merchant_id,
            role=row.role,
            kind="api_key",
            id=row.id,
            location_id=row.location_id,
            location_ids=None if row.location_id is None else frozenset({row.location_id}),
            name=row.name,
        )
        _note_key_use(session, row.id)
    _key_cache.put(key_hash, actor)
    return actor


# --- staff -----------------------------------------------------------------------------


def create_staff(
    session: Session,
    merchant_id: int,
    login: str,
    password: str,
    role: str,
    name: str = "",
    location_ids: list[int] | None = None,
    phone_index: str | None = None,
    actor: Actor | None = None,
) -> Staff:
    if role not in ROLES:
        raise Explained(
            "validation_error", "role must be one of {roles}", roles=", ".join(ROLES), extra={"field": "role"}
        )
    login = login.strip().lower()
    if not login or len(login) > 200:
        raise DomainError("validation_error", "a login is required", field="login")
    if len(password) < 8:
        raise DomainError("validation_error", "a password needs at least 8 characters", field="password")
    if actor is not None:
        actor.require("owner")
    if session.scalar(select(Staff.id).where(Staff.login == login)) is not None:
        raise DomainError("conflict", "this login is taken", field="login")
    staff = Staff(
        merchant_id=merchant_id,
        login=login,
        name=name,
        password_hash=hash_password(password),
        role=role,
        phone_index=phone_index,
    )
    session.add(staff)
    session.flush()
    for location_id in location_ids or []:
        get_location(session, merchant_id, location_id)
        session.add(StaffLocation(staff_id=staff.id, location_id=location_id))
    if actor is not None:
        audit(session, actor, "staff.create", "staff", staff.id, {"login": login, "role": role})
    return staff


def list_staff(session: Session, merchant_id: int) -> list[Staff]:
    return list(session.scalars(select(Staff).where(Staff.merchant_id == merchant_id).order_by(Staff.id)))


def get_staff(session: Session, merchant_id: int, staff_id: int) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None or staff.merchant_id != merchant_id:
        raise DomainError("not_found", "staff member not found")
    return staff


def locations_of_staff(session: Session, staff_ids: list[int]) -> dict[int, list[int]]:
    """The locations each of these staff members is bound to (none: all locations)."""
    bound: dict[int, list[int]] = {}
    for sid, lid in session.execute(
        select(StaffLocation.staff_id, StaffLocation.location_id).where(StaffLocation.staff_id.in_(staff_ids))
    ):
        bound.setdefault(sid, []).append(lid)
    return bound


def bind_staff_to_locations(
    session: Session, merchant_id: int, staff: Staff, location_ids: list[int]
) -> None:
    """Replaces the staff member's locations (each must be the merchant's)."""
    session.execute(delete(StaffLocation).where(StaffLocation.staff_id == staff.id))
    for location_id in location_ids:
        get_location(session, merchant_id, location_id)
        session.add(StaffLocation(staff_id=staff.id, location_id=location_id))


def staff_location_ids(session: Session, staff: Staff) -> frozenset[int] | None:
    if staff.role != "cashier":
        return None
    ids = session.scalars(select(StaffLocation.location_id).where(StaffLocation.staff_id == staff.id)).all()
    return frozenset(ids) if ids else None


def actor_for_staff(session: Session, staff: Staff, location_id: int | None = None) -> Actor:
    ids = staff_location_ids(session, staff)
    if location_id is None and ids is not None and len(ids) == 1:
        location_id = next(iter(ids))
    return Actor(
        merchant_id=staff.merchant_id,
        role=staff.role,
        kind="staff",
        id=staff.id,
        location_id=location_id,
        location_ids=ids,
        phone_index=staff.phone_index,
        name=staff.name or staff.login,
    )


# --- audit -----------------------------------------------------------------------------


def audit(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: Any = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    session.add(
        AuditLog(
            merchant_id=actor.merchant_id,
            actor_type=actor.kind,
            actor_id=actor.id,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            details=details or {},
            ip=ip,
        )
    )


def today(merchant: Merchant, now: dt.datetime | None = None) -> dt.date:
    """'Today' in the merchant's time zone (daily limits, birthdays, reports)."""
    return (now or utcnow()).astimezone(merchant_tz(merchant)).date()
