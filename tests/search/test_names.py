"""Finding guests by their encrypted names through the keyed token index."""

from __future__ import annotations

from sqlalchemy import select

from loyalwallet import db
from loyalwallet.customers.models import Customer
from loyalwallet.customers.service import GuestData, erase, get_or_create
from loyalwallet.search import rules, service
from loyalwallet.search.models import NameToken
from support import Shop, random_phone


def test_prefixes_and_matching() -> None:
    assert rules.words("Анна-Мария  ПЁТРОВА") == ["анна", "мария", "петрова"]
    assert {"ан", "анна", "пе", "петрова"} <= rules.prefixes("Анна Петрова")
    assert "а" not in rules.prefixes("Анна")
    assert rules.query_terms("Ann a") == ["ann"]
    assert rules.matches("Анна Петрова", "пет ан") and not rules.matches("Анна Петрова", "иван")


def _guest(merchant_id: int, name: str) -> int:
    with db.transaction() as session:
        customer, _ = get_or_create(session, merchant_id, GuestData(phone=random_phone(), name=name))
        return customer.id


def test_search_by_name_within_the_merchant(shop: Shop, client) -> None:
    from support import new_shop

    anna = _guest(shop.merchant_id, "Анна Петрова")
    _guest(shop.merchant_id, "Борис Петров")
    other = new_shop(client, "Elsewhere")
    _guest(other.merchant_id, "Анна Сидорова")
    with db.read() as session:
        assert service.search(session, shop.merchant_id, "анна") == [anna]
        assert len(service.search(session, shop.merchant_id, "Петров")) == 2
        assert service.search(session, shop.merchant_id, "ПЕТ анн") == [anna]
        assert service.search(session, shop.merchant_id, "a") == []
        # Nothing readable is stored: tokens are keyed hashes.
        tokens = session.scalars(select(NameToken.token).where(NameToken.customer_id == anna)).all()
        assert tokens and all(isinstance(t, int) for t in tokens)


def test_renaming_and_erasing_update_the_index(shop: Shop) -> None:
    cid = _guest(shop.merchant_id, "Вера")
    with db.transaction() as session:
        customer = session.get(Customer, cid)
        phone = service.crypto.open_(customer.phone_enc, merchant_id=shop.merchant_id, column="phone")
        get_or_create(session, shop.merchant_id, GuestData(phone=phone, name="Валентина"))
    with db.read() as session:
        assert service.search(session, shop.merchant_id, "вера") == []
        assert service.search(session, shop.merchant_id, "валя") == []
        assert service.search(session, shop.merchant_id, "вал") == [cid]
    with db.transaction() as session:
        erase(session, session.get(Customer, cid))
    with db.read() as session:
        assert service.search(session, shop.merchant_id, "вал") == []
    with db.transaction() as session:
        assert service.reindex(session, shop.merchant_id) >= 0


def test_reindex_command(shop: Shop, settings, monkeypatch) -> None:
    from typer.testing import CliRunner

    from loyalwallet import cli as cli_module
    from loyalwallet import runtime

    cid = _guest(shop.merchant_id, "Зоя")
    with db.transaction() as session:
        session.execute(NameToken.__table__.delete().where(NameToken.customer_id == cid))
    monkeypatch.setattr(runtime, "start", lambda data_dir=None: None)
    result = CliRunner().invoke(cli_module.app, ["search", "reindex", "--merchant", str(shop.merchant_id)])
    assert result.exit_code == 0, result.output
    with db.read() as session:
        assert service.search(session, shop.merchant_id, "зоя") == [cid]
