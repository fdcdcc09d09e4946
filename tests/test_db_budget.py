"""The connection budget: each process takes its share of LOYALWALLET_DB_POOL, and the
doctor's check warns when the shares exceed PostgreSQL's max_connections."""

from __future__ import annotations

import pytest

from loyalwallet import db


def test_each_process_takes_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOYALWALLET_DB_POOL", raising=False)
    monkeypatch.delenv("LOYALWALLET_DB_PROCESSES", raising=False)
    assert db.pool_budget() == (15, 15)  # 90 over 3 processes: 15 kept open, 15 at a peak
    monkeypatch.setenv("LOYALWALLET_DB_POOL", "40")
    monkeypatch.setenv("LOYALWALLET_DB_PROCESSES", "8")
    assert db.pool_budget() == (2, 3)


def test_the_check_warns_when_the_processes_ask_for_more_than_the_server_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = db.get_engine()
    monkeypatch.setenv("LOYALWALLET_DB_POOL", "90")
    monkeypatch.setenv("LOYALWALLET_DB_PROCESSES", "3")
    if engine.dialect.name != "postgresql":
        assert db.db_budget_problem(engine) is None
        return
    with engine.connect() as conn:
        limit = int(conn.exec_driver_sql("SHOW max_connections").scalar_one())
    monkeypatch.setenv("LOYALWALLET_DB_POOL", str(limit * 3))
    problem = db.db_budget_problem(engine)
    assert problem is not None and "max_connections" in problem
    monkeypatch.setenv("LOYALWALLET_DB_POOL", "12")
    assert db.db_budget_problem(engine) is None
