"""The name token index: keyed hashes of word prefixes of guests' names.

Names are sealed with AES-GCM, so the database cannot search them. For every word of a
name we store HMAC(index key, merchant:prefix) of its prefixes, truncated to 64 bits.
A search hashes what was typed the same way and intersects. Nothing readable is stored;
what leaks is that two guests of one merchant share a name prefix (as the phone blind
index leaks that two rows share a phone).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID


class NameToken(Base):
    __tablename__ = "customer_name_tokens"
    __table_args__ = (Index("ix_customer_name_tokens_lookup", "merchant_id", "token", "customer_id"),)

    customer_id: Mapped[int] = mapped_column(BigID, ForeignKey("customers.id"), primary_key=True)
    token: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
