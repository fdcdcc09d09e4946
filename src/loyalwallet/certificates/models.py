"""Gift certificates and their money ledger (never mixed with the points ledger).

The certificate row caches its balance; it changes only in the same transaction as the
entries that explain it: certificate.balance == sum(certificate_entries.amount) and
balance >= 0, checked by `loyalwallet check-ledger` (certificates.service.check_ledger).
Amounts are integer minor units of the merchant's currency.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp

# issue: the sale (+initial amount); spend: paid a check (-); refund: a refunded check
# gives it back (+); expiry: the rest written off at expires_at (-); void: the sale
# cancelled (-the whole balance).
ENTRY_KINDS = ("issue", "spend", "refund", "expiry", "void")


class GiftCertificate(Base):
    __tablename__ = "gift_certificates"
    __table_args__ = (
        UniqueConstraint("merchant_id", "code"),
        Index("ix_gift_certificates_due", "status", "expires_at"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    code: Mapped[str] = mapped_column(String(32))  # what the barcode holds; a bearer secret
    public_token: Mapped[str] = mapped_column(String(64), unique=True)  # web page / pass URLs
    auth_token: Mapped[str] = mapped_column(String(64))  # Apple authenticationToken
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    initial_amount: Mapped[int] = mapped_column(BigInteger)
    balance: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | expired | void
    design: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(500))
    # Contacts are PII: sealed (crypto.seal) with the column name as associated data.
    buyer_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    recipient_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    recipient_name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    location_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("locations.id"))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    external_id: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class CertificateEntry(Base):
    """One movement of a certificate's money. A spend names the purchase (or stands alone
    for a guest without a loyalty card); a refund names the spend it gives back to."""

    __tablename__ = "certificate_entries"
    __table_args__ = (
        Index("ix_certificate_entries_cert", "certificate_id", "id"),
        Index("ix_certificate_entries_merchant_created", "merchant_id", "created_at"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    certificate_id: Mapped[int] = mapped_column(BigID, ForeignKey("gift_certificates.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)  # signed: + credits, - debits
    purchase_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("purchases.id"), index=True)
    refund_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("refunds.id"))
    # For a refund: the spend entry it gives back to.
    spend_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("certificate_entries.id"))
    location_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("locations.id"))
    external_id: Mapped[str | None] = mapped_column(String(128))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID)
    created_at: Mapped[Timestamp]
