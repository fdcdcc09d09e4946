"""Which Google objects guests saved: hasUsers from the answers we get anyway, the
periodic re-check of unsaved objects (bounded), the dashboard and `google status`."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from loyalwallet import db
from loyalwallet.analytics import service as analytics
from loyalwallet.cards.models import Card
from loyalwallet.merchants.actors import Actor
from loyalwallet.outbox import handlers as outbox_handlers
from loyalwallet.wallet.google import saves
from loyalwallet.wallet.google.issuer import import_key
from loyalwallet.wallet.google.models import GoogleObject
from loyalwallet.wallet.google.service import status
from loyalwallet.wallet.google.sync import send_message
from staff_support import add_staff, login
from support import Shop
from wallet.google.helpers import deliveries, drain, make_due


@pytest.fixture
def gs(gshop: Any) -> Iterator[Any]:
    """gshop; afterwards none of its objects is left due for a check (saves.schedule
    looks at every merchant's objects, and the tests here age theirs)."""
    yield gshop
    with db.transaction() as session:
        session.execute(
            update(GoogleObject)
            .where(GoogleObject.merchant_id == gshop.shop.merchant_id)
            .values(checked_at=db.utcnow(), created_at=db.utcnow() - dt.timedelta(days=365))
        )


def _card_id(shop: Shop, code: str) -> int:
    with db.read() as session:
        return session.scalar(select(Card.id).where(Card.merchant_id == shop.merchant_id, Card.code == code))


def _row(card_id: int) -> GoogleObject:
    with db.read() as session:
        row = session.get(GoogleObject, card_id)
        assert row is not None
        session.expunge(row)
        return row


def _enrolled(shop: Shop, program: int, n: int = 1) -> list[int]:
    ids = [_card_id(shop, shop.card(program)["code"]) for _ in range(n)]
    drain()
    return ids


def _age(merchant_id: int, hours: float, *, created: float = 0.0) -> None:
    """Move the merchant's objects' last check `hours` (and their links `created` more
    hours) into the past, as if that much time went by."""
    with db.transaction() as session:
        for row in session.scalars(select(GoogleObject).where(GoogleObject.merchant_id == merchant_id)):
            if row.checked_at is not None:
                row.checked_at -= dt.timedelta(hours=hours)
            row.created_at -= dt.timedelta(hours=hours + created)


def _checks(merchant_id: int) -> list[Any]:
    return [d for d in deliveries(merchant_id, "google.check")]


def _gets(fake: Any) -> list[str]:
    return [c.path.rsplit("/", 1)[-1] for c in fake.calls_to("GET", "/loyaltyObject/")]


def test_a_save_seen_in_a_patch_answer_is_recorded(gs) -> None:
    shop, fake = gs.shop, gs.fake
    program = shop.program("bonus")
    code = shop.card(program)["code"]
    drain()
    card_id = _card_id(shop, code)
    row = _row(card_id)
    assert row.inserted and not row.has_users and row.saved_at is None
    assert row.checked_at is not None  # the insert's answer said: not saved (yet)

    fake.save(row.object_id)  # the guest taps "Add to Google Wallet"
    shop.buy(code, 30_000)
    drain()
    row = _row(card_id)
    assert row.has_users and row.saved_at is not None and row.checked_at >= row.saved_at
    first_saved = row.saved_at
    assert not _gets(fake)  # learnt from the patch's answer: no extra call

    shop.buy(code, 10_000)
    drain()
    assert _row(card_id).saved_at == first_saved  # the first time it was seen saved
    with db.read() as session:
        assert status(session, shop.merchant_id)["objects_saved"] == 1

    fake.save(row.object_id, saved=False)  # removed from the phone
    shop.buy(code, 10_000)
    drain()
    row = _row(card_id)
    assert not row.has_users and row.saved_at == first_saved

    with db.read() as session:
        assert status(session, shop.merchant_id)["objects_saved"] == 0


def test_a_save_seen_in_a_message_answer_is_recorded(gs) -> None:
    shop, fake = gs.shop, gs.fake
    (card_id,) = _enrolled(shop, shop.program("bonus"))
    fake.save(_row(card_id).object_id)
    assert send_message(card_id, shop.merchant_id, "Hello", "A gift for you", "m1") == "sent"
    assert _row(card_id).has_users


def test_the_periodic_job_picks_up_a_later_save(gs) -> None:
    shop, fake = gs.shop, gs.fake
    saved, unsaved = _enrolled(shop, shop.program("bonus"), 2)
    fake.save(_row(saved).object_id)

    saves.schedule()
    assert _checks(shop.merchant_id) == []  # both answered about a moment ago (their insert)

    _age(shop.merchant_id, 7)
    assert saves.schedule() == 2
    (check,) = _checks(shop.merchant_id)
    assert sorted(check.payload["card_ids"]) == sorted([saved, unsaved])
    drain()
    assert [d.status for d in _checks(shop.merchant_id)] == ["done"]
    assert sorted(_gets(fake)) == sorted([_row(saved).object_id, _row(unsaved).object_id])
    assert _row(saved).has_users and _row(saved).saved_at is not None
    assert not _row(unsaved).has_users and _row(unsaved).checked_at > db.utcnow() - dt.timedelta(minutes=1)

    _age(shop.merchant_id, 7)
    assert saves.schedule() == 1  # a known save is never asked about again
    drain()
    assert len(_gets(fake)) == 3

    # The periodic job is listed for the worker (wiring.PERIODIC; runs once across processes).
    assert "google-saves" in [name for name, _interval, _fn in outbox_handlers.PERIODIC]


def test_budget_batches_window_and_recheck_interval(gs, monkeypatch: pytest.MonkeyPatch) -> None:
    shop, fake = gs.shop, gs.fake
    ids = _enrolled(shop, shop.program("bonus"), 5)
    monkeypatch.setenv("LOYALWALLET_GOOGLE_SAVES_BUDGET", "3")
    monkeypatch.setattr(saves, "BATCH", 2)
    _age(shop.merchant_id, 7)
    with db.transaction() as session:  # a link made 31 days ago: out of the window
        session.get(GoogleObject, ids[4]).created_at = db.utcnow() - dt.timedelta(days=31)

    assert saves.schedule() == 3  # the budget
    checks = _checks(shop.merchant_id)
    assert [c.payload["card_ids"] for c in checks] == [ids[:2], ids[2:3]]  # oldest checks first
    assert all(c.max_attempts == saves.CHECK_ATTEMPTS for c in checks)
    assert saves.schedule() == 1  # the rest (ids[4] is too old to be asked about)
    assert saves.schedule() == 0  # everything was checked within RECHECK_HOURS
    drain()
    assert sorted(_gets(fake)) == sorted(_row(i).object_id for i in ids[:4])

    _age(shop.merchant_id, 5)  # 5 hours later: still too soon
    assert saves.schedule() == 0
    monkeypatch.setenv("LOYALWALLET_GOOGLE_SAVES_RECHECK_HOURS", "4")
    assert saves.schedule() == 3
    assert saves.schedule() == 1
    monkeypatch.setenv("LOYALWALLET_GOOGLE_SAVES_BUDGET", "0")
    _age(shop.merchant_id, 5)
    assert saves.schedule() == 0


def test_check_failures_are_retried_and_never_lose_progress(gs) -> None:
    shop, fake = gs.shop, gs.fake
    a, b, c = _enrolled(shop, shop.program("bonus"), 3)
    for card_id in (a, b, c):
        fake.save(_row(card_id).object_id)
    _age(shop.merchant_id, 7)
    fake.fail(503, times=1, method="GET", path=_row(b).object_id)
    assert saves.schedule() == 3
    drain()
    (check,) = _checks(shop.merchant_id)
    assert check.status == "pending" and "503" in (check.last_error or "")
    assert _row(a).has_users and not _row(b).has_users  # what was learnt before the outage is kept
    make_due(shop.merchant_id)
    drain()
    assert [d.status for d in _checks(shop.merchant_id)] == ["done"]
    assert _row(b).has_users and _row(c).has_users
    gets = _gets(fake)
    assert gets.count(_row(a).object_id) == 1  # the retry did not ask about `a` again


def test_a_refusal_waits_and_a_missing_object_is_inserted_again(gs) -> None:
    shop, fake = gs.shop, gs.fake
    refused, gone = _enrolled(shop, shop.program("bonus"), 2)
    _age(shop.merchant_id, 7)
    fake.fail(403, times=1, method="GET", path=_row(refused).object_id)
    gone_id = _row(gone).object_id
    del fake.objects[gone_id]
    assert saves.schedule() == 2
    drain()
    assert [d.status for d in _checks(shop.merchant_id)] == ["done"]
    assert _row(refused).checked_at > db.utcnow() - dt.timedelta(minutes=1)  # asked again in RECHECK_HOURS
    assert gone_id in fake.objects  # a google.patch put it back
    assert _row(gone).inserted
    assert saves.schedule() == 0


def test_dashboard_counts_google_wallet_cards(gs) -> None:
    shop, fake = gs.shop, gs.fake
    program = shop.program("bonus")
    codes = [shop.card(program)["code"] for _ in range(4)]
    drain()
    ids = [_card_id(shop, code) for code in codes]
    # Saved: codes 0 and 1 (seen by a patch and by the periodic check); 2 has a link only.
    for card_id in ids[:2]:
        fake.save(_row(card_id).object_id)
    shop.buy(codes[0], 20_000)
    shop.buy(codes[2], 20_000)
    drain()
    _age(shop.merchant_id, 7)
    saves.schedule()
    drain()
    with db.transaction() as session:  # the last one never got a Google link at all
        session.execute(delete(GoogleObject).where(GoogleObject.card_id == ids[3]))

    actor = Actor(merchant_id=shop.merchant_id, role="manager", kind="staff")
    with db.read() as session:
        f = analytics.filters_for(session, actor, None, None)
        board = analytics.dashboard(session, actor, f)
    assert sorted(board.issued_by("wallet")) == [("google", 2, 1), ("web", 2, 1)]

    page = login(shop.client.app, add_staff(shop, "manager")).get("/admin")
    assert page.status_code == 200
    table = page.text.split('id="wallets"', 1)[1].split("</table>", 1)[0]
    rows = [" ".join(re.sub(r"<[^>]+>", " ", tr).split()) for tr in table.split("<tr>")[2:]]
    assert "Google Wallet 2 1" in rows and len(rows) == 2  # and the web cards' row (in Russian)

    with db.read() as session:
        info = status(session, shop.merchant_id)
    assert (info["objects"], info["objects_at_google"], info["objects_saved"]) == (3, 3, 2)


def test_status_command_shows_saves(gs, settings) -> None:
    shop, fake = gs.shop, gs.fake
    (card_id,) = _enrolled(shop, shop.program("bonus"))
    fake.save(_row(card_id).object_id)
    _age(shop.merchant_id, 7)
    saves.schedule()
    drain()
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
    }
    out = subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", "google", "status", "--merchant", str(shop.merchant_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "1 saved by guests" in " ".join(out.stdout.split())


def test_a_new_issuer_makes_a_new_object_nobody_saved_yet(gs) -> None:
    shop, fake = gs.shop, gs.fake
    program = shop.program("bonus")
    code = shop.card(program)["code"]
    drain()
    card_id = _card_id(shop, code)
    fake.save(_row(card_id).object_id)
    shop.buy(code, 10_000)
    drain()
    assert _row(card_id).has_users

    fake.issuer_id = "3388000000099999999"  # the merchant moves to another issuer account
    with db.transaction() as session:
        import_key(session, gs.key_file, fake.issuer_id, shop.merchant_id)
    shop.buy(code, 10_000)
    drain()
    row = _row(card_id)
    assert row.object_id.startswith(fake.issuer_id + ".") and row.inserted
    assert not row.has_users and row.saved_at is None and row.checked_at is not None
