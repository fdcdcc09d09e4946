"""Guests and their consents. PII columns hold AES-GCM ciphertexts (see crypto.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        Index("uq_customers_merchant_phone", "merchant_id", "phone_index", unique=True),
        Index("ix_customers_merchant_birth_md", "merchant_id", "birth_md"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    # HMAC of the E.164 phone; NULL once the guest is erased.
    phone_index: Mapped[str | None] = mapped_column(String(64))
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    birthday_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Month*100+day, kept in clear so birthday triggers can query it; the year stays sealed.
    birth_md: Mapped[int | None] = mapped_column(SmallInteger)
    gender: Mapped[str | None] = mapped_column(String(16))
    # Other form fields (city, custom ones), sealed as one JSON document.
    extra_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    locale: Mapped[str | None] = mapped_column(String(8))
    marketing_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[Timestamp]
    erased_at: Mapped[dt.datetime | None]


class Consent(Base):
    """One row per consent event: granted or withdrawn, with the text version and channel."""

    __tablename__ = "consents"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    customer_id: Mapped[int] = mapped_column(BigID, ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # personal_data | marketing
    granted: Mapped[bool] = mapped_column(Boolean)
    text_version: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))  # api | join_page | cashier | import
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[Timestamp]
