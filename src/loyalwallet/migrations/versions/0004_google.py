"""Google Wallet: issuers (sealed service-account keys), classes and objects

Revision ID: 0004_google
Revises: 0005_enrollment
Create Date: 2026-11-24 15:50:52.452431
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "0004_google"
down_revision: str | Sequence[str] | None = "0005_enrollment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Safe to run while servers of the previous release still serve (rolling upgrade): it
# only adds tables, indexes, and nullable or defaulted columns. See docs/upgrades.md.
online_safe = True


def upgrade() -> None:
    op.create_table(
        "google_issuers",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("issuer_id", sa.String(length=32), nullable=False),
        sa.Column("service_account_email", sa.String(length=320), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("token_uri", sa.String(length=500), nullable=False),
        sa.Column("development", sa.Boolean(), nullable=False),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_google_issuers_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_google_issuers")),
    )
    op.create_index(op.f("ix_google_issuers_merchant_id"), "google_issuers", ["merchant_id"], unique=False)
    op.create_table(
        "google_classes",
        sa.Column("class_id", sa.String(length=200), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("variant", sa.String(length=32), nullable=False),
        sa.Column("inserted", sa.Boolean(), nullable=False),
        sa.Column("synced_hash", sa.String(length=64), nullable=True),
        sa.Column("updated_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_google_classes_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_google_classes_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("class_id", name=op.f("pk_google_classes")),
    )
    op.create_index("ix_google_classes_program", "google_classes", ["program_id"], unique=False)
    op.create_table(
        "google_objects",
        sa.Column("card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=False),
        sa.Column("save_jwt", sa.Text(), nullable=True),
        sa.Column("jwt_key_id", sa.String(length=64), nullable=True),
        sa.Column("jwt_kind", sa.String(length=8), nullable=True),
        sa.Column("inserted", sa.Boolean(), nullable=False),
        sa.Column("class_id", sa.String(length=200), nullable=True),
        sa.Column("synced_hash", sa.String(length=64), nullable=True),
        sa.Column("synced_version", sa.Integer(), nullable=False),
        sa.Column("synced_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("notified_at", sa.JSON(), nullable=False),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_google_objects_card_id_cards")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_google_objects_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("card_id", name=op.f("pk_google_objects")),
        sa.UniqueConstraint("object_id", name=op.f("uq_google_objects_object_id")),
    )
    op.create_index("ix_google_objects_merchant", "google_objects", ["merchant_id", "inserted"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_google_objects_merchant", table_name="google_objects")
    op.drop_table("google_objects")
    op.drop_index("ix_google_classes_program", table_name="google_classes")
    op.drop_table("google_classes")
    op.drop_index(op.f("ix_google_issuers_merchant_id"), table_name="google_issuers")
    op.drop_table("google_issuers")
