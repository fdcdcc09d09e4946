"""An e-mail campaign's chunk goes out over several SMTP connections at once
(LOYALWALLET_SMTP_CONNECTIONS), each guest getting exactly one message; a connection the
server drops mid-chunk, or an address it defers (4xx), leaves only those guests for the
retry, and the retry mails nobody twice."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select, update

from fakes.smtp import FakeSmtp
from loyalwallet import db
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from support import Shop


def _campaign(shop: Shop) -> int:
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Autumn", "header": "Pumpkin latte", "body": "Come.", "channel": "email", "send_now": True},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _stats(shop: Shop, campaign_id: int) -> dict[str, int]:
    return dict(shop.get(f"/api/v1/campaigns/{campaign_id}").json()["stats"])


def _retry_now() -> None:
    """The retry's back-off has passed."""
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.status == "pending").values(next_attempt_at=db.utcnow())
        )


def _guests(shop: Shop, n: int, *extra: str, prefix: str = "guest") -> list[str]:
    program = shop.program("bonus")
    addresses = [f"{prefix}{i}@example.test" for i in range(n)] + list(extra)
    for address in addresses:
        shop.card(program, email=address, marketing_consent=True)
    return addresses


def test_a_chunk_goes_out_over_several_connections(
    shop: Shop, smtp: FakeSmtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOYALWALLET_SMTP_CONNECTIONS", "3")
    addresses = _guests(shop, 40)
    campaign_id = _campaign(shop)
    worker.drain()
    received = Counter(to for _, rcpts in smtp.envelopes for to in rcpts)
    assert received == Counter(addresses)  # each guest exactly once
    assert len(set(smtp.connections)) == 3  # three connections, no more
    stats = _stats(shop, campaign_id)
    assert (stats["sent"], stats["pending"]) == (40, 0), stats


@pytest.mark.parametrize("connections", ["1", "3"])
def test_a_connection_dropped_mid_chunk_is_retried_without_duplicates(
    shop: Shop, smtp: FakeSmtp, monkeypatch: pytest.MonkeyPatch, connections: str
) -> None:
    monkeypatch.setenv("LOYALWALLET_SMTP_CONNECTIONS", connections)
    addresses = _guests(shop, 30, "dropped@example.test")
    smtp.drop.add("dropped@example.test")  # the server goes away at this guest's RCPT
    campaign_id = _campaign(shop)
    worker.drain()
    first = Counter(to for _, rcpts in smtp.envelopes for to in rcpts)
    assert "dropped@example.test" not in first and max(first.values()) == 1
    stats = _stats(shop, campaign_id)
    assert stats["pending"] >= 1 and stats["sent"] == len(first), stats

    _retry_now()
    worker.drain()
    received = Counter(to for _, rcpts in smtp.envelopes for to in rcpts)
    assert received == Counter(addresses)  # the rest once, nobody twice
    stats = _stats(shop, campaign_id)
    assert (stats["sent"], stats["pending"]) == (31, 0), stats
    assert shop.get(f"/api/v1/campaigns/{campaign_id}").json()["status"] == "sent"


def test_a_deferred_address_does_not_hold_up_the_chunk(
    shop: Shop, smtp: FakeSmtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOYALWALLET_SMTP_CONNECTIONS", "1")
    _guests(shop, 3, prefix="before")
    _guests(shop, 0, "later@busy.test")  # greylisted: 451 at RCPT
    _guests(shop, 3, prefix="after")
    campaign_id = _campaign(shop)
    worker.drain()
    # Every other guest is mailed at the first try; only the deferred one waits.
    assert len(smtp.envelopes) == 6
    stats = _stats(shop, campaign_id)
    assert (stats["sent"], stats["pending"], stats["bounced"]) == (6, 1, 0), stats
    _retry_now()
    worker.drain()
    assert len(smtp.envelopes) == 6  # still deferred: the others are not sent again
    assert _stats(shop, campaign_id)["pending"] == 1


def test_a_chunk_marks_its_progress_so_a_dying_worker_resends_little(
    shop: Shop, smtp: FakeSmtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loyalwallet.campaigns.models import CampaignRecipient
    from loyalwallet.messaging import campaign_email

    monkeypatch.setenv("LOYALWALLET_SMTP_CONNECTIONS", "1")
    monkeypatch.setattr(campaign_email, "MARK_EVERY", 5)
    real_mark = campaign_email._mark
    dying = [True]

    def mark(campaign_id: int, marks: dict[str, list[int]], *args: object) -> None:
        if "skipped" in marks and dying[0]:  # the chunk's last marks: the worker dies first
            dying[0] = False
            raise RuntimeError("worker killed")
        real_mark(campaign_id, marks, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(campaign_email, "_mark", mark)
    addresses = _guests(shop, 30)
    campaign_id = _campaign(shop)
    worker.drain()
    assert len(smtp.envelopes) == 30 and not dying[0]
    with db.read() as session:
        marked = set(
            session.scalars(
                select(CampaignRecipient.id).where(
                    CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.status == "sent"
                )
            )
        )
    assert len(marked) >= 5  # marked while the chunk went on

    _retry_now()
    worker.drain()
    received = Counter(to for _, rcpts in smtp.envelopes for to in rcpts)
    assert set(received) == set(addresses)
    # Only the guests not yet marked when the worker died get a second copy.
    assert sum(received.values()) == 30 + (30 - len(marked))
    stats = _stats(shop, campaign_id)
    assert (stats["sent"], stats["pending"]) == (30, 0), stats
