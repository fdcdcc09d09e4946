"""enrollment: join forms, consent texts, channels, OTP challenges, joins, rate hits

Revision ID: 0005_enrollment
Revises: 0002_assets
Create Date: 2026-11-24 15:51:59.082489
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "0005_enrollment"
down_revision: str | Sequence[str] | None = "0002_assets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Safe to run while servers of the previous release still serve (rolling upgrade): it
# only adds tables, indexes, and nullable or defaulted columns. See docs/upgrades.md.
online_safe = True


def upgrade() -> None:
    op.create_table(
        "rate_hits",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("bucket", sa.String(length=100), nullable=False),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_hits")),
    )
    op.create_index("ix_rate_hits_bucket_created", "rate_hits", ["bucket", "created_at"], unique=False)

    op.create_table(
        "consent_texts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_consent_texts_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_texts")),
        sa.UniqueConstraint(
            "merchant_id", "kind", "version", name=op.f("uq_consent_texts_merchant_id_kind_version")
        ),
    )
    op.create_table(
        "channels",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_medium", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.Column("offer", sa.String(length=300), nullable=True),
        sa.Column("invitation", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scans", sa.Integer(), nullable=False),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_channels_location_id_locations")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_channels_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_channels_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint("merchant_id", "slug", name=op.f("uq_channels_merchant_id_slug")),
        sa.UniqueConstraint("token", name=op.f("uq_channels_token")),
    )
    op.create_table(
        "join_forms",
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_join_forms_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_join_forms_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_join_forms")),
    )
    op.create_index(op.f("ix_join_forms_merchant_id"), "join_forms", ["merchant_id"], unique=False)

    op.create_table(
        "joins",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created", sa.Boolean(), nullable=False),
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_medium", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.Column("utm_content", sa.String(length=100), nullable=True),
        sa.Column("utm_term", sa.String(length=100), nullable=True),
        sa.Column("referrer_card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("referral", sa.String(length=40), nullable=True),
        sa.Column("invitation_card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("platform", sa.String(length=16), nullable=True),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.Column("device_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_joins_card_id_cards")),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name=op.f("fk_joins_channel_id_channels")),
        sa.ForeignKeyConstraint(
            ["invitation_card_id"], ["cards.id"], name=op.f("fk_joins_invitation_card_id_cards")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_joins_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_joins_program_id_programs")),
        sa.ForeignKeyConstraint(
            ["referrer_card_id"], ["cards.id"], name=op.f("fk_joins_referrer_card_id_cards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_joins")),
    )
    op.create_index(op.f("ix_joins_card_id"), "joins", ["card_id"], unique=False)
    op.create_index("ix_joins_merchant_created", "joins", ["merchant_id", "created_at"], unique=False)
    op.create_index("ix_joins_referrer_created", "joins", ["referrer_card_id", "created_at"], unique=False)

    op.create_table(
        "otp_challenges",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("phone_index", sa.String(length=64), nullable=False),
        sa.Column("phone_enc", sa.LargeBinary(), nullable=False),
        sa.Column("data_enc", sa.LargeBinary(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resend_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.Column("card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("verified_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_otp_challenges_card_id_cards")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_otp_challenges_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_otp_challenges_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_otp_challenges")),
        sa.UniqueConstraint("token", name=op.f("uq_otp_challenges_token")),
    )
    op.create_index(
        "ix_otp_challenges_phone_created", "otp_challenges", ["phone_index", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_otp_challenges_phone_created", table_name="otp_challenges")

    op.drop_table("otp_challenges")
    op.drop_index("ix_joins_referrer_created", table_name="joins")
    op.drop_index("ix_joins_merchant_created", table_name="joins")
    op.drop_index(op.f("ix_joins_card_id"), table_name="joins")

    op.drop_table("joins")
    op.drop_index(op.f("ix_join_forms_merchant_id"), table_name="join_forms")

    op.drop_table("join_forms")
    op.drop_table("channels")
    op.drop_table("consent_texts")
    op.drop_index("ix_rate_hits_bucket_created", table_name="rate_hits")

    op.drop_table("rate_hits")
