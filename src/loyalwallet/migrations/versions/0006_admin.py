"""admin, cashier, analytics rollups, name search, card code ranges

Revision ID: 0006_admin
Revises: 0003_apple
Create Date: 2026-11-24 16:38:55.904106

Staff web sessions and login attempts (web/), the name token index (search/), plastic
card code ranges (imports/), the analytics rollups and snapshot, and indexes for the
dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalwallet.db

revision: str = "0006_admin"
down_revision: str | Sequence[str] | None = "0003_apple"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Safe to run while servers of the previous release still serve (rolling upgrade): it
# only adds tables, indexes, and nullable or defaulted columns. See docs/upgrades.md.
online_safe = True


def upgrade() -> None:
    op.create_table(
        "analytics_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_analytics_state")),
    )
    op.create_table(
        "login_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("login", sa.String(length=200), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index("ix_login_attempts_ip", "login_attempts", ["ip", "created_at"], unique=False)
    op.create_index("ix_login_attempts_login", "login_attempts", ["login", "created_at"], unique=False)

    op.create_table(
        "analytics_cohort_sizes",
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("cards", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_analytics_cohort_sizes_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "program_id", "month", name=op.f("pk_analytics_cohort_sizes")),
    )
    op.create_table(
        "analytics_day_categories",
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("location_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("program_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("checks", sa.BigInteger(), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_analytics_day_categories_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint(
            "merchant_id",
            "day",
            "location_id",
            "program_id",
            "category",
            name=op.f("pk_analytics_day_categories"),
        ),
    )
    op.create_table(
        "analytics_days",
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("location_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("program_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("purchases", sa.BigInteger(), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.Column("lined", sa.BigInteger(), nullable=False),
        sa.Column("upsell", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_analytics_days_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint(
            "merchant_id", "day", "location_id", "program_id", name=op.f("pk_analytics_days")
        ),
    )
    op.create_table(
        "analytics_guest_cells",
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recency", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("visits", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("guests", sa.BigInteger(), nullable=False),
        sa.Column("spend", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_analytics_guest_cells_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint(
            "merchant_id", "program_id", "recency", "visits", name=op.f("pk_analytics_guest_cells")
        ),
    )
    op.create_table(
        "card_code_ranges",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("length", sa.SmallInteger(), nullable=False),
        sa.Column("first", sa.String(length=32), nullable=True),
        sa.Column("last", sa.String(length=32), nullable=True),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_card_code_ranges_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_card_code_ranges_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_code_ranges")),
    )
    op.create_index(
        "ix_card_code_ranges_merchant", "card_code_ranges", ["merchant_id", "program_id"], unique=False
    )

    op.create_table(
        "customer_name_tokens",
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_name_tokens_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_customer_name_tokens_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("customer_id", "token", name=op.f("pk_customer_name_tokens")),
    )
    op.create_index(
        "ix_customer_name_tokens_lookup",
        "customer_name_tokens",
        ["merchant_id", "token", "customer_id"],
        unique=False,
    )

    op.create_table(
        "web_sessions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("location_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("created_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", loyalwallet.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_web_sessions_location_id_locations")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_web_sessions_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_web_sessions_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    op.create_index("ix_web_sessions_staff", "web_sessions", ["staff_id"], unique=False)

    op.create_table(
        "analytics_card_months",
        sa.Column("card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cohort_month", sa.String(length=7), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_id"], ["cards.id"], name=op.f("fk_analytics_card_months_card_id_cards")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_analytics_card_months_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_analytics_card_months_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("card_id", "month", name=op.f("pk_analytics_card_months")),
    )
    op.create_index(
        "ix_analytics_card_months_cohort",
        "analytics_card_months",
        ["merchant_id", "cohort_month", "month", "program_id"],
        unique=False,
    )

    op.create_index("ix_cards_merchant_created", "cards", ["merchant_id", "created_at"], unique=False)

    op.create_index(
        "ix_purchases_analytics",
        "purchases",
        ["merchant_id", "created_at", "card_id", "amount", "location_id", "program_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_purchases_analytics", table_name="purchases")

    op.drop_index("ix_cards_merchant_created", table_name="cards")

    op.drop_index("ix_analytics_card_months_cohort", table_name="analytics_card_months")

    op.drop_table("analytics_card_months")
    op.drop_index("ix_web_sessions_staff", table_name="web_sessions")

    op.drop_table("web_sessions")
    op.drop_index("ix_customer_name_tokens_lookup", table_name="customer_name_tokens")

    op.drop_table("customer_name_tokens")
    op.drop_index("ix_card_code_ranges_merchant", table_name="card_code_ranges")

    op.drop_table("card_code_ranges")
    op.drop_table("analytics_guest_cells")
    op.drop_table("analytics_days")
    op.drop_table("analytics_day_categories")
    op.drop_table("analytics_cohort_sizes")
    op.drop_index("ix_login_attempts_login", table_name="login_attempts")
    op.drop_index("ix_login_attempts_ip", table_name="login_attempts")

    op.drop_table("login_attempts")
    op.drop_table("analytics_state")
