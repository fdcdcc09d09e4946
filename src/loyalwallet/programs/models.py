"""Programs a merchant runs. `rules` is validated by programs.rules before it is stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp

KINDS = ("bonus", "discount", "stamp", "iiko")


class Program(Base):
    __tablename__ = "programs"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Card look (colours, images, fields, locations); owned by the wallet parts.
    design: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | archived
    # Bumped on every change of rules or design: caches key on (id, version).
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class Asset(Base):
    """An uploaded or rendered image, addressed by the SHA-256 of its bytes. Kept in
    the database so any number of stateless servers can serve it."""

    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("merchant_id", "sha256"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[Timestamp]
