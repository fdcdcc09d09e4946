"""Tables of a merchant: the merchant itself, locations, staff, API keys and the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp

ROLES = ("owner", "manager", "cashier")


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[IdPK]
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    locale: Mapped[str] = mapped_column(String(8), default="ru")
    # Merchant-wide settings (anti-fraud limits, SMS sender, ...); validated by the owning part.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[Timestamp]


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(32))
    # Coordinates are not money: Numeric keeps them exact enough for Wallet's geofences.
    latitude: Mapped[float | None] = mapped_column(Numeric(9, 6, asdecimal=False))
    longitude: Mapped[float | None] = mapped_column(Numeric(9, 6, asdecimal=False))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[Timestamp]


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("login"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), index=True)
    login: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    # Blind index of the staff member's own phone: a cashier may not serve their own card.
    phone_index: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[Timestamp]
    last_login_at: Mapped[dt.datetime | None]


class StaffLocation(Base):
    """A cashier works only at the locations listed here (none = all for owner/manager)."""

    __tablename__ = "staff_locations"

    staff_id: Mapped[int] = mapped_column(BigID, ForeignKey("staff.id"), primary_key=True)
    location_id: Mapped[int] = mapped_column(BigID, ForeignKey("locations.id"), primary_key=True)


class ApiKey(Base):
    """A POS or script credential. Only the SHA-256 of the key is stored; keys are
    256-bit random, so a fast hash is enough (a slow KDF protects low-entropy secrets)."""

    __tablename__ = "api_keys"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    location_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("locations.id"))
    created_at: Mapped[Timestamp]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]


class AuditLog(Base):
    """Who did what: every staff and API action that changes something."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_merchant_created", "merchant_id", "created_at"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    actor_type: Mapped[str] = mapped_column(String(16))  # staff | api_key | system | guest
    actor_id: Mapped[int | None] = mapped_column(BigID)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[Timestamp]
