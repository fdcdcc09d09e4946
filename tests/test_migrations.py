"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import loyalwallet.models  # noqa: F401
from loyalwallet import db
from loyalwallet.db import Base
from loyalwallet.migrations import current_heads


def test_models_and_migrations_agree(settings) -> None:
    with db.get_engine().connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_one_head(settings) -> None:
    assert len(current_heads(settings.database_url)) == 1
