"""Tables of the staff web app: login sessions and login attempts (for rate limiting).

Both live in the database so any number of `loyalwallet serve` processes agree on who is
logged in, on logouts, and on how many wrong passwords a login has had.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class WebSession(Base):
    """A logged-in staff member. The cookie holds a random token; only its keyed hash
    (HMAC with the session key) is stored, so a copy of the table logs nobody in."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_staff", "staff_id"),)

    id: Mapped[IdPK]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(BigID, ForeignKey("staff.id"))
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    # The location a cashier works at during this session (chosen at login).
    location_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("locations.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[Timestamp]
    last_seen_at: Mapped[Timestamp]
    expires_at: Mapped[dt.datetime]


class LoginAttempt(Base):
    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_login", "login", "created_at"),
        Index("ix_login_attempts_ip", "ip", "created_at"),
    )

    id: Mapped[IdPK]
    login: Mapped[str] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(64))
    success: Mapped[bool] = mapped_column(Boolean)
    # The known device (web.sessions.device_cookie) the attempt came from, if any.
    device: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[Timestamp]
