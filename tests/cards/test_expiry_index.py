"""The points expiry sweep reads the partial index of open lots, not the whole ledger."""

from __future__ import annotations

from sqlalchemy import text

from loyalwallet import db
from loyalwallet.cards.sweeps import due_cards


def test_the_expiry_sweep_query_uses_the_open_lots_index() -> None:
    stmt = due_cards(db.utcnow(), 200)
    with db.read() as session:
        compiled = stmt.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        if db.is_sqlite():
            plan = " ".join(str(r[-1]) for r in session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
        else:
            session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(r[0] for r in session.execute(text(f"EXPLAIN {compiled}")))
    assert "ix_ledger_open_expiry" in plan, plan
