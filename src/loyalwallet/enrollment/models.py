"""Tables of enrollment: join-form settings, channels, one-time codes, joins, rate hits.

Everything a guest types before the phone is confirmed lives sealed in the OTP challenge;
customers and cards are written only when the code is right, in one transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class JoinForm(Base):
    """How a program's join page looks and asks: fields, consent texts, the offer."""

    __tablename__ = "join_forms"

    program_id: Mapped[int] = mapped_column(BigID, ForeignKey("programs.id"), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), index=True)
    # Validated by enrollment.rules.FormSettings.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[Timestamp]


class ConsentText(Base):
    """The exact wording a guest agreed to, by version (the SHA-256 prefix of the text).
    Consent rows keep only the version; this table says what it meant."""

    __tablename__ = "consent_texts"
    __table_args__ = (UniqueConstraint("merchant_id", "kind", "version"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(32))  # personal_data | marketing
    version: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[Timestamp]


class Channel(Base):
    """Where guests come from: a counter QR, a table tent, the website widget, a post."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("merchant_id", "slug"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    program_id: Mapped[int] = mapped_column(BigID, ForeignKey("programs.id"))
    location_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("locations.id"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    # What cards of this channel record in cards.channel.
    slug: Mapped[str] = mapped_column(String(64))
    # The short link printed in QR codes: /j/{token}.
    token: Mapped[str] = mapped_column(String(32), unique=True)
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    # The offer printed on the table tent (None: the join form's, else one from the rules).
    offer: Mapped[str | None] = mapped_column(String(300))
    # Scanning installs an anonymous card first; the guest fills the form later.
    invitation: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | archived
    scans: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[Timestamp]


class OtpChallenge(Base):
    """A pending join: the form as typed (sealed) and the hashed one-time code sent
    to the phone. Becomes `verified` with the card it produced."""

    __tablename__ = "otp_challenges"
    __table_args__ = (Index("ix_otp_challenges_phone_created", "phone_index", "created_at"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    program_id: Mapped[int] = mapped_column(BigID, ForeignKey("programs.id"))
    token: Mapped[str] = mapped_column(String(64), unique=True)  # in the verify page URL
    phone_index: Mapped[str] = mapped_column(String(64))
    phone_enc: Mapped[bytes] = mapped_column(LargeBinary)
    data_enc: Mapped[bytes] = mapped_column(LargeBinary)
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sends: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | verified
    expires_at: Mapped[dt.datetime]
    resend_at: Mapped[dt.datetime]
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    card_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("cards.id"))
    outcome: Mapped[str | None] = mapped_column(String(16))  # created | existing | merged
    created_at: Mapped[Timestamp]
    verified_at: Mapped[dt.datetime | None]


class Join(Base):
    """How a card came to be: channel, UTM tags, referral verdict, device. Feeds the
    channel statistics and the referral fraud checks."""

    __tablename__ = "joins"
    __table_args__ = (
        Index("ix_joins_merchant_created", "merchant_id", "created_at"),
        Index("ix_joins_referrer_created", "referrer_card_id", "created_at"),
        # Which card an invitation card was merged into (analytics/activity.py folds its
        # purchases into the kept card's purchase days).
        Index(
            "ix_joins_invitation_card",
            "invitation_card_id",
            "card_id",
            postgresql_where=text("invitation_card_id IS NOT NULL"),
            sqlite_where=text("invitation_card_id IS NOT NULL"),
        ),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    program_id: Mapped[int] = mapped_column(BigID, ForeignKey("programs.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # form | invitation
    created: Mapped[bool] = mapped_column(Boolean)  # a new card (not the guest's existing one)
    channel_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("channels.id"))
    channel: Mapped[str | None] = mapped_column(String(64))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    utm_content: Mapped[str | None] = mapped_column(String(100))
    utm_term: Mapped[str | None] = mapped_column(String(100))
    referrer_card_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("cards.id"))
    # accepted | rejected:<reason>; NULL when no referral link was used.
    referral: Mapped[str | None] = mapped_column(String(40))
    # The anonymous invitation card this join claimed or merged.
    invitation_card_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("cards.id"))
    platform: Mapped[str | None] = mapped_column(String(16))  # ios | android | desktop
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    device_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[Timestamp]


class RateHit(Base):
    """One counted event of a rate limit (an SMS to a phone, from an IP, ...). Counting
    rows in a window makes every server process agree; old rows are purged."""

    __tablename__ = "rate_hits"
    __table_args__ = (Index("ix_rate_hits_bucket_created", "bucket", "created_at"),)

    id: Mapped[IdPK]
    bucket: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[Timestamp]
