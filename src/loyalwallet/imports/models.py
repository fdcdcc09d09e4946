"""Card code ranges: which plastic card numbers belong to which program.

Like 1C's card code templates: a range is a prefix and a length (and optionally a
numeric first..last). An imported or freshly handed-out plastic card whose number falls
in a program's range becomes a card of that program with that number as its code.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class CardCodeRange(Base):
    __tablename__ = "card_code_ranges"
    __table_args__ = (Index("ix_card_code_ranges_merchant", "merchant_id", "program_id"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    program_id: Mapped[int] = mapped_column(BigID, ForeignKey("programs.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(32), default="")
    length: Mapped[int] = mapped_column(SmallInteger)
    # Optional numeric bounds, inclusive, compared as numbers (codes of digits only).
    first: Mapped[str | None] = mapped_column(String(32))
    last: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[Timestamp]
