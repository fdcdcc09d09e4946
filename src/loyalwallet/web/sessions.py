"""Staff login: password check with rate limiting, server-side sessions, CSRF tokens.

- The session cookie holds 256 random bits; the database keeps HMAC(session key, token),
  so neither a leaked table nor a guessed id opens a session, and logout is immediate
  for every server process.
- CSRF: each session has its own random token. Forms carry it in a hidden field, the
  cashier's JavaScript in the X-CSRF-Token header; every unsafe request must present it
  (the cookie alone is not enough). The cookie is also SameSite=Lax.
- Wrong passwords are counted in the database per login and per address, so several
  processes enforce one limit; past it the login answers 429 without checking the
  password at all.
- Known devices: a successful login leaves a device cookie signed for that login (HMAC
  with the session key; one cookie per login). Wrong passwords from elsewhere lock the
  login for new devices (and alert the owner, fraud rule `login_locked`), but a device
  that signed in before keeps its own count, so nobody can keep the owner out by typing
  wrong passwords for their login.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.config import env, get_settings
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError
from loyalwallet.fraud import rules as fr
from loyalwallet.fraud import service as fraud
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Location, Staff
from loyalwallet.merchants.passwords import hash_password, needs_rehash, verify_password
from loyalwallet.merchants.service import actor_for_staff, audit, staff_location_ids
from loyalwallet.text import translate
from loyalwallet.web.models import LoginAttempt, WebSession

COOKIE = "lw_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
LIFETIME = dt.timedelta(days=int(env("SESSION_DAYS", "14") or 14))
# Failed logins allowed in WINDOW before the login (or the address) is refused.
WINDOW = dt.timedelta(minutes=15)
MAX_FAILS_PER_LOGIN = int(env("LOGIN_MAX_FAILS", "5") or 5)
MAX_FAILS_PER_IP = int(env("LOGIN_MAX_FAILS_IP", "30") or 30)
DEVICE_COOKIE_PREFIX = "lw_known_"
DEVICE_LIFETIME = dt.timedelta(days=365)


# Compared against when the login does not exist, so both cases take an argon2 verify.
# Made on first use: an argon2 hash costs every process (each CLI command too) ~0.4 s.
@functools.cache
def _dummy_hash() -> str:
    return hash_password("not a real password, only for timing")


def token_hash(token: str) -> str:
    return hmac.new(get_settings().session_key, token.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class StaffSession:
    """A valid session: the staff member, their actor and the CSRF token."""

    session_id: int
    staff_id: int
    merchant_id: int
    login: str
    name: str
    role: str
    locale: str | None
    location_id: int | None
    csrf: str
    actor: Actor


def device_cookie_name(login: str) -> str:
    """The known-device cookie of one login (several staff may share a till's browser)."""
    return DEVICE_COOKIE_PREFIX + hashlib.sha256(login.strip().lower().encode()).hexdigest()[:16]


def _device_mac(login: str, device: str) -> str:
    message = f"known-device\x00{login.strip().lower()}\x00{device}".encode()
    return hmac.new(get_settings().session_key, message, hashlib.sha256).hexdigest()[:32]


def device_cookie(login: str, device: str | None = None) -> str:
    """The value of the device cookie for `login`: a device id and its signature."""
    device = device or secrets.token_hex(8)
    return f"{device}.{_device_mac(login, device)}"


def known_device(login: str, value: str | None) -> str | None:
    """The device id when `value` is a device cookie signed for this login, else None."""
    if not value or len(value) > 100 or "." not in value:
        return None
    device, mac = value.split(".", 1)
    if not device or len(device) > 32 or not hmac.compare_digest(mac, _device_mac(login, device)):
        return None
    return device


def _fails(session: Session, since: dt.datetime, *where: Any) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(*where, LoginAttempt.success.is_(False), LoginAttempt.created_at >= since)
        )
        or 0
    )


def _login_fails(session: Session, login: str, device: str | None, now: dt.datetime) -> int:
    """Wrong passwords for this login in the window since its last success: a known device
    counts only its own; every other device shares one count."""
    same = LoginAttempt.device == device if device is not None else LoginAttempt.device.is_(None)
    last_ok = session.scalar(
        select(func.max(LoginAttempt.created_at)).where(
            LoginAttempt.login == login, LoginAttempt.success.is_(True), same
        )
    )
    since = now - WINDOW
    return _fails(session, max(since, last_ok) if last_ok else since, LoginAttempt.login == login, same)


def check_rate(session: Session, login: str, ip: str | None, device: str | None = None) -> None:
    """Refuse before any password check when this login (from this device, or from any
    unknown one) or this address failed too often. A known device is not held back by
    its address: it can only try its own login."""
    now = utcnow()
    if _login_fails(session, login, device, now) >= MAX_FAILS_PER_LOGIN:
        raise DomainError("rate_limited", "too many wrong passwords for this login; try again in 15 minutes")
    if (
        device is None
        and ip is not None
        and _fails(session, now - WINDOW, LoginAttempt.ip == ip) >= MAX_FAILS_PER_IP
    ):
        raise DomainError("rate_limited", "too many failed logins from this address; try again later")


def record_attempt(
    session: Session, login: str, ip: str | None, success: bool, device: str | None = None
) -> None:
    session.add(LoginAttempt(login=login[:200], ip=ip, success=success, device=device, created_at=utcnow()))


def _alert_lockout(session: Session, login: str, ip: str | None) -> None:
    """Tell the owner (fraud alert + Telegram) once the login's unknown-device count is full;
    more attempts while it is locked count on the same alert."""
    staff = session.scalar(select(Staff).where(Staff.login == login))
    if staff is None:
        return
    now = utcnow()
    attempts = _login_fails(session, login, None, now)
    if attempts < MAX_FAILS_PER_LOGIN:
        return
    details = {
        "login": login,
        "ip": ip or "-",
        "attempts": attempts,
        "minutes": int(WINDOW.total_seconds() // 60),
    }
    hit = fr.Hit("login_locked", "alert", translate("en", fr.MESSAGES["login_locked"], details), details)
    context = {
        "operation": "login",
        "actor_type": "staff",
        "actor_id": staff.id,
        "actor_name": staff.name or staff.login,
    }
    fraud.record_alert(session, staff.merchant_id, hit, "alerted", context, now)


def refused(login: str, ip: str | None, device_cookie_value: str | None = None) -> None:
    """A try refused with rate_limited still counts (and alerts) when it came from an
    unknown device. Its own transaction: call it after the one that was refused."""
    login = login.strip().lower()[:200]
    if known_device(login, device_cookie_value) is not None:
        return
    with db.transaction() as session:
        record_attempt(session, login, ip, False)
        session.flush()
        _alert_lockout(session, login, ip)


def authenticate(
    session: Session, login: str, password: str, ip: str | None, device_cookie_value: str | None = None
) -> Staff | None:
    """The active staff member with this login and password, or None (the failed attempt
    is recorded in `session`, which the caller commits). Raises rate_limited.
    `device_cookie_value`: the login's known-device cookie, if the browser sent one."""
    login = login.strip().lower()[:200]
    device = known_device(login, device_cookie_value)
    check_rate(session, login, ip, device)  # the caller counts a refused try: refused()
    staff = session.scalar(select(Staff).where(Staff.login == login))
    ok = verify_password(staff.password_hash if staff else _dummy_hash(), password) and staff is not None
    if not ok or staff is None or not staff.active:
        record_attempt(session, login, ip, False, device)
        if device is None:
            session.flush()
            _alert_lockout(session, login, ip)
        return None
    record_attempt(session, login, ip, True, device)
    if needs_rehash(staff.password_hash):
        staff.password_hash = hash_password(password)
    staff.last_login_at = utcnow()
    return staff


def locations_for(session: Session, staff: Staff) -> list[Location]:
    """Where this staff member may work: their bound locations, or every active one."""
    ids = staff_location_ids(session, staff)
    stmt = select(Location).where(Location.merchant_id == staff.merchant_id, Location.active.is_(True))
    if ids is not None:
        stmt = stmt.where(Location.id.in_(ids))
    return list(session.scalars(stmt.order_by(Location.id)))


def start(
    session: Session,
    staff: Staff,
    *,
    location_id: int | None,
    ip: str | None,
    user_agent: str | None,
) -> str:
    """Open a session; returns the cookie value."""
    allowed = {loc.id for loc in locations_for(session, staff)}
    if location_id is not None and location_id not in allowed:
        raise DomainError("forbidden", "you are not bound to that location")
    if location_id is None and len(allowed) == 1:
        location_id = next(iter(allowed))
    token = crypto.token(32)
    now = utcnow()
    session.add(
        WebSession(
            token_hash=token_hash(token),
            staff_id=staff.id,
            merchant_id=staff.merchant_id,
            location_id=location_id,
            csrf_token=crypto.token(24),
            ip=ip,
            user_agent=(user_agent or "")[:300],
            created_at=now,
            last_seen_at=now,
            expires_at=now + LIFETIME,
        )
    )
    actor = actor_for_staff(session, staff, location_id)
    audit(session, actor, "staff.login", "staff", staff.id, {"location_id": location_id}, ip=ip)
    return token


def load(session: Session, token: str | None) -> StaffSession | None:
    """The live session behind a cookie value, or None (expired, logged out, staff disabled)."""
    if not token or len(token) > 100:
        return None
    row = session.execute(
        select(WebSession, Staff)
        .join(Staff, Staff.id == WebSession.staff_id)
        .where(WebSession.token_hash == token_hash(token))
    ).first()
    if row is None:
        return None
    ws, staff = row
    now = utcnow()
    if ws.expires_at <= now or not staff.active or staff.merchant_id != ws.merchant_id:
        return None
    actor = actor_for_staff(session, staff, ws.location_id)
    return StaffSession(
        session_id=ws.id,
        staff_id=staff.id,
        merchant_id=staff.merchant_id,
        login=staff.login,
        name=staff.name or staff.login,
        role=staff.role,
        locale=staff.locale,
        location_id=ws.location_id,
        csrf=ws.csrf_token,
        actor=actor,
    )


def end(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))


def end_all_for(session: Session, staff_id: int) -> None:
    """Log a staff member out everywhere (password changed, account disabled)."""
    session.execute(delete(WebSession).where(WebSession.staff_id == staff_id))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and crypto.constant_time_equal(expected, given or "")


def sweep(now: dt.datetime | None = None) -> None:
    """Forget expired sessions and old login attempts."""
    from loyalwallet import db

    now = now or utcnow()
    with db.transaction() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at <= now))
        session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < now - dt.timedelta(days=7)))


def set_location(session: Session, token: str | None, location_id: int) -> None:
    if token:
        session.execute(
            update(WebSession)
            .where(WebSession.token_hash == token_hash(token))
            .values(location_id=location_id)
        )
