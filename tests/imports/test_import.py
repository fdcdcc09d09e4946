"""`loyalwallet import customers`: dry run, bad rows reported, good rows only after a
yes, balances through the ledger, plastic numbers working at the cashier."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from enrollment_support import sms_code
from loyalwallet import db
from loyalwallet.cards.models import Card, LedgerEntry
from loyalwallet.cards.sweeps import check_ledger
from loyalwallet.errors import DomainError
from loyalwallet.imports import rules
from loyalwallet.imports.models import CardCodeRange
from loyalwallet.merchants.actors import system
from support import Shop

BONUS = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}], "welcome_points": 100}

CSV = """Телефон;Имя;Дата рождения;Баланс;Номер карты
8 916 700-00-01;Анна Петрова;17.05.1990;1 200;7700000001
+7 916 700 00 02;Борис;1985-01-31;0;7700000002
not a phone;Вера;;50;7700000003
+79167000004;Глеб;31.02.1990;10;7700000004
+79167000005;Дарья;;abc;
+79167000001;Анна again;;5;7700000006
+79167000007;Егор;;30;9900000001
+79167000008;Жанна;;15;
"""


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "base.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


@pytest.fixture
def cli(settings, monkeypatch):
    from loyalwallet import cli as cli_module
    from loyalwallet import runtime

    # The command configures itself from the environment: point it at the test database.
    monkeypatch.setenv("LOYALWALLET_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LOYALWALLET_DATABASE_URL", settings.database_url)
    monkeypatch.setattr(runtime, "start", lambda data_dir=None: None)
    return cli_module.app


def _with_range(shop: Shop, program: int) -> None:
    with db.transaction() as session:
        session.add(
            CardCodeRange(
                merchant_id=shop.merchant_id, program_id=program, name="old", prefix="77", length=10
            )
        )


def _cards(program: int) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(func.count()).select_from(Card).where(Card.program_id == program)) or 0
        )


def test_rows_are_read_and_checked() -> None:
    rows = rules.read_rows(CSV)
    assert [r.status for r in rows] == ["new", "new", "error", "error", "error", "error", "new", "new"]
    assert rows[0].phone == "+79167000001" and rows[0].balance == 1200 and rows[0].card == "7700000001"
    assert str(rows[0].birthday) == "1990-05-17"
    assert "the same phone as line 2" in rows[5].errors
    with pytest.raises(DomainError, match="phone column"):
        rules.read_rows("name,balance\nA,1\n")


def test_code_ranges() -> None:
    r = rules.validate_range("77", 10, "7700000000", "7700009999")
    assert r.matches("7700000001") and not r.matches("7800000001") and not r.matches("77000000011")
    assert not r.matches("7700010000")
    assert rules.check_code("9900000001", [r], []) is not None
    assert rules.check_code("7700000001", [], [r]) is not None
    assert rules.check_code("ABCD1234", [], []) is None
    with pytest.raises(DomainError):
        rules.validate_range("77", 2, None, None)


def test_dry_run_writes_nothing(cli, shop: Shop, csv_file: Path) -> None:
    program = shop.program("bonus", BONUS)
    _with_range(shop, program)
    args = [
        "import",
        "customers",
        str(csv_file),
        "--program",
        str(program),
        "--merchant",
        str(shop.merchant_id),
    ]
    result = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "outside the program's card code ranges" in result.output  # line 8, 9900000001
    assert "not a valid phone" in result.output and "cannot read the date" in result.output
    assert _cards(program) == 0


def test_good_rows_only_after_confirmation(cli, shop: Shop, csv_file: Path, tmp_path: Path) -> None:
    program = shop.program("bonus", BONUS)
    _with_range(shop, program)
    args = [
        "import",
        "customers",
        str(csv_file),
        "--program",
        str(program),
        "--merchant",
        str(shop.merchant_id),
    ]
    declined = CliRunner().invoke(cli, args, input="n\n")
    assert declined.exit_code == 1 and "nothing was written" in declined.output
    assert _cards(program) == 0

    report = tmp_path / "bad.csv"
    result = CliRunner().invoke(cli, [*args, "--report", str(report)], input="y\n")
    assert result.exit_code == 0, result.output
    assert "imported 3 guests" in result.output
    assert report.read_text(encoding="utf-8").count("\n") == 1 + 5
    assert _cards(program) == 3

    # The plastic number is the card's code: it works at the cashier and through the API.
    card = shop.get("/api/v1/cards/7700000001", role="cashier").json()
    assert card["balance"] == 1200 and card["customer"]["name"] == "Анна Петрова"
    assert shop.get("/api/v1/cards", params={"phone": "+79167000008"}).json()["items"][0]["balance"] == 15
    with db.read() as session:
        kinds = session.execute(
            select(LedgerEntry.kind, LedgerEntry.reason)
            .join(Card, Card.id == LedgerEntry.card_id)
            .where(Card.code == "7700000001")
        ).all()
        assert kinds == [("adjustment", f"import: {csv_file.name}")]  # no welcome gift on top
        assert check_ledger(session) == []
    p = shop.buy("7700000001", 40_000, redeem_points=200)
    assert p["points_redeemed"] == 200

    # A re-run skips who is there already and imports nothing twice.
    again = CliRunner().invoke(cli, [*args, "--yes"])
    assert "already there (skipped)" in again.output and _cards(program) == 3


def test_plastic_card_handed_out_at_the_counter(shop: Shop, client) -> None:
    from loyalwallet.imports.service import add_range

    program = shop.program("bonus", BONUS)
    with db.transaction() as session:
        from loyalwallet.programs.models import Program

        add_range(
            session,
            system(shop.merchant_id),
            session.get(Program, program),
            name="new",
            prefix="55",
            length=8,
        )
    found = shop.get("/cashier/plastic", params={"code": "55000123"}, role="cashier")
    assert found.status_code == 200 and found.json()["program_id"] == program
    assert shop.get("/cashier/plastic", params={"code": "66000123"}, role="cashier").status_code == 404
    # Handed out as the join page does it: consent, an SMS code, then the card.
    body = {"program_id": program, "phone": "+79167770000", "name": "Ира", "card_code": "55000123"}
    refused = shop.post("/api/v1/enrollments", {**body, "personal_data_consent": False}, role="cashier")
    assert refused.status_code == 422 and refused.json()["code"] == "consent_required"
    pending = shop.post("/api/v1/enrollments", {**body, "personal_data_consent": True}, role="cashier")
    assert pending.status_code == 202, pending.text
    assert shop.get("/cashier/plastic", params={"code": "55000123"}, role="cashier").status_code == 200
    token = pending.json()["token"]
    wrong = shop.post(f"/api/v1/enrollments/{token}/confirm", {"code": "000000"}, role="cashier")
    assert wrong.status_code == 422 and wrong.json()["code"] == "otp_invalid"
    r = shop.post(f"/api/v1/enrollments/{token}/confirm", {"code": sms_code("+79167770000")}, role="cashier")
    assert r.status_code == 201, r.text
    assert r.json()["code"] == "55000123" and r.json()["balance"] == 100
    assert shop.get("/cashier/plastic", params={"code": "55000123"}, role="cashier").status_code == 404
    with db.read() as session:
        from loyalwallet.customers.models import Consent

        consents = session.scalars(select(Consent.kind).where(Consent.merchant_id == shop.merchant_id)).all()
    assert "personal_data" in consents
    # A number already issued, or of no range of the programme, is refused before any SMS.
    taken = shop.post(
        "/api/v1/enrollments",
        {**body, "phone": "+79167770001", "personal_data_consent": True},
        role="cashier",
    )
    assert taken.status_code == 422 and taken.json()["code"] == "validation_error"
    # The guest who already has a card of the programme keeps it.
    again = shop.post(
        "/api/v1/enrollments",
        {**body, "card_code": "55000124", "personal_data_consent": True},
        role="cashier",
    )
    token = again.json()["token"]
    r = shop.post(f"/api/v1/enrollments/{token}/confirm", {"code": sms_code("+79167770000")}, role="cashier")
    assert r.status_code == 200 and r.json()["code"] == "55000123" and r.json()["created"] is False
    # The one-step issue without an SMS code is gone.
    old = shop.post("/cashier/plastic", {"code": "55000125", "phone": "+79167770002"}, role="cashier")
    assert old.status_code in (404, 405)
