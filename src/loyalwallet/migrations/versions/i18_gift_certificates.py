"""Gift certificates with a balance: the certificates and their own money ledger

Revision ID: i18_gift_certificates
Revises: 0010_google_saves
Create Date: 2026-12-07 01:53:18.934433
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "i18_gift_certificates"
down_revision: str | Sequence[str] | None = "i15_worker_heartbeats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Only adds tables: old servers keep working while and after it runs.
online_safe = True


def upgrade() -> None:

    op.create_table(
        "gift_certificates",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("public_token", sa.String(length=64), nullable=False),
        sa.Column("auth_token", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("initial_amount", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("design", sa.String(length=64), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("buyer_enc", sa.LargeBinary(), nullable=True),
        sa.Column("recipient_enc", sa.LargeBinary(), nullable=True),
        sa.Column("recipient_name_enc", sa.LargeBinary(), nullable=True),
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("expires_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_gift_certificates_location_id_locations")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_gift_certificates_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_certificates")),
        sa.UniqueConstraint("merchant_id", "code", name=op.f("uq_gift_certificates_merchant_id_code")),
        sa.UniqueConstraint("public_token", name=op.f("uq_gift_certificates_public_token")),
    )
    with op.batch_alter_table("gift_certificates", schema=None) as batch_op:
        batch_op.create_index("ix_gift_certificates_due", ["status", "expires_at"], unique=False)

    op.create_table(
        "certificate_entries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("certificate_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("purchase_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("refund_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("spend_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["gift_certificates.id"],
            name=op.f("fk_certificate_entries_certificate_id_gift_certificates"),
        ),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_certificate_entries_location_id_locations")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_certificate_entries_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_certificate_entries_purchase_id_purchases")
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_certificate_entries_refund_id_refunds")
        ),
        sa.ForeignKeyConstraint(
            ["spend_id"],
            ["certificate_entries.id"],
            name=op.f("fk_certificate_entries_spend_id_certificate_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_entries")),
    )
    with op.batch_alter_table("certificate_entries", schema=None) as batch_op:
        batch_op.create_index("ix_certificate_entries_cert", ["certificate_id", "id"], unique=False)
        batch_op.create_index(
            "ix_certificate_entries_merchant_created", ["merchant_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_certificate_entries_purchase_id"), ["purchase_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("certificate_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificate_entries_purchase_id"))
        batch_op.drop_index("ix_certificate_entries_merchant_created")
        batch_op.drop_index("ix_certificate_entries_cert")

    op.drop_table("certificate_entries")
    with op.batch_alter_table("gift_certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_gift_certificates_due")

    op.drop_table("gift_certificates")
