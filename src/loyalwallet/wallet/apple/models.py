"""Apple Wallet tables: signing certificates, APNs keys, device registrations.

- `apple_certificates`: the Pass Type ID certificate (public part in PEM) with its
  private key sealed with AES-GCM (crypto.seal). `merchant_id` NULL is the installation's
  certificate; a merchant may have its own. `kind` is "development" (the self-signed
  chain the demo makes) or "production" (imported from Apple).
- `apple_push_keys`: an APNs auth key (.p8, ES256) for token-based pushes, sealed too.
  Without one, pushes use the pass certificate itself (certificate-based APNs auth).
- `apple_registrations`: a device's registration for one pass (PassKit web service).
  `change_seq` is stamped when the pass changes; see updates.py for why it is a commit-
  ordered number and not a timestamp.
- `apple_push_pending`: at most one queued push per device token (bursts collapse).
- `apple_counters`: the commit-ordered change counter on SQLite (see updates.py).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class AppleCertificate(Base):
    __tablename__ = "apple_certificates"
    __table_args__ = (Index("ix_apple_certificates_merchant_active", "merchant_id", "active"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(16))  # development | production
    pass_type_id: Mapped[str] = mapped_column(String(255))
    team_id: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(500))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the certificate (DER)
    cert_pem: Mapped[str] = mapped_column(Text)
    key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # The WWDR intermediate(s) shipped in every signature; for the development chain
    # also the fake root, last, so a test can verify the whole chain.
    chain_pem: Mapped[str] = mapped_column(Text)
    not_after: Mapped[dt.datetime]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[Timestamp]


class ApplePushKey(Base):
    __tablename__ = "apple_push_keys"
    __table_args__ = (Index("ix_apple_push_keys_team_active", "team_id", "active"),)

    id: Mapped[IdPK]
    team_id: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(32))
    key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[Timestamp]


class AppleRegistration(Base):
    __tablename__ = "apple_registrations"
    __table_args__ = (
        UniqueConstraint("device_id", "pass_type_id", "serial"),
        Index("ix_apple_registrations_card", "card_id"),
        Index("ix_apple_registrations_coupon", "coupon_id"),
        Index("ix_apple_registrations_token", "push_token"),
        Index("ix_apple_registrations_serial", "serial"),
        Index("ix_apple_registrations_device", "device_id", "pass_type_id", "change_seq"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    device_id: Mapped[str] = mapped_column(String(128))  # deviceLibraryIdentifier
    pass_type_id: Mapped[str] = mapped_column(String(255))
    serial: Mapped[str] = mapped_column(String(64))
    card_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("cards.id"))
    coupon_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("coupons.id"))
    push_token: Mapped[str] = mapped_column(Text)  # up to 1,000 hex characters (service.PUSH_TOKEN_RE)
    change_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class ApplePushPending(Base):
    __tablename__ = "apple_push_pending"

    push_token: Mapped[str] = mapped_column(Text, primary_key=True)
    pass_type_id: Mapped[str] = mapped_column(String(255))
    queued_at: Mapped[Timestamp]


class AppleCounter(Base):
    __tablename__ = "apple_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
