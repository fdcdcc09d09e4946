"""apple wallet: certificates, push keys, device registrations

Revision ID: 0003_apple
Revises: 0004_google
Create Date: 2026-11-24 16:00:40.402376
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "0003_apple"
down_revision: str | Sequence[str] | None = "0004_google"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Safe to run while servers of the previous release still serve (rolling upgrade): it
# only adds tables, indexes, and nullable or defaulted columns. See docs/upgrades.md.
online_safe = True

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = loyalwallet.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "apple_certificates",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("pass_type_id", sa.String(length=255), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_enc", sa.LargeBinary(), nullable=False),
        sa.Column("chain_pem", sa.Text(), nullable=False),
        sa.Column("not_after", UTC, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_apple_certificates_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apple_certificates")),
    )
    op.create_index("ix_apple_certificates_merchant_active", "apple_certificates", ["merchant_id", "active"])

    op.create_table(
        "apple_push_keys",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("key_enc", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apple_push_keys")),
    )
    op.create_index("ix_apple_push_keys_team_active", "apple_push_keys", ["team_id", "active"])

    op.create_table(
        "apple_registrations",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("pass_type_id", sa.String(length=255), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("card_id", ID, nullable=True),
        sa.Column("coupon_id", ID, nullable=True),
        sa.Column("push_token", sa.String(length=200), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_apple_registrations_card_id_cards")),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["coupons.id"], name=op.f("fk_apple_registrations_coupon_id_coupons")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_apple_registrations_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apple_registrations")),
        sa.UniqueConstraint(
            "device_id",
            "pass_type_id",
            "serial",
            name=op.f("uq_apple_registrations_device_id_pass_type_id_serial"),
        ),
    )
    op.create_index("ix_apple_registrations_card", "apple_registrations", ["card_id"])
    op.create_index("ix_apple_registrations_coupon", "apple_registrations", ["coupon_id"])
    op.create_index(
        "ix_apple_registrations_device", "apple_registrations", ["device_id", "pass_type_id", "change_seq"]
    )
    op.create_index("ix_apple_registrations_token", "apple_registrations", ["push_token"])
    op.create_index("ix_apple_registrations_serial", "apple_registrations", ["serial"])

    op.create_table(
        "apple_push_pending",
        sa.Column("push_token", sa.String(length=200), nullable=False),
        sa.Column("pass_type_id", sa.String(length=255), nullable=False),
        sa.Column("queued_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("push_token", name=op.f("pk_apple_push_pending")),
    )
    op.create_table(
        "apple_counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_apple_counters")),
    )
    # The commit-ordered change counter of SQLite (wallet/apple/updates.py).
    op.execute("INSERT INTO apple_counters (name, value) VALUES ('changes', 0)")


def downgrade() -> None:
    op.drop_table("apple_counters")
    op.drop_table("apple_push_pending")
    for name in ("serial", "token", "device", "coupon", "card"):
        op.drop_index(f"ix_apple_registrations_{name}", table_name="apple_registrations")
    op.drop_table("apple_registrations")
    op.drop_index("ix_apple_push_keys_team_active", table_name="apple_push_keys")
    op.drop_table("apple_push_keys")
    op.drop_index("ix_apple_certificates_merchant_active", table_name="apple_certificates")
    op.drop_table("apple_certificates")
