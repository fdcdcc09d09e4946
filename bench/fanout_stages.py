"""A message-only campaign's stages in one process, CPU per card of each: campaign.start,
campaign.deliver, card.changed, google.message, run one row at a time by this thread
(worker.claim / attempt / record) against the fake Google Wallet, on a fresh PostgreSQL
database. `time.thread_time` of the handler's thread: google.message's batch requests
run in the Google part's pool threads and the fake answers in this process, so its HTTP
work is not in the figure (the raw client's share, measured by bench/fanout.py).
Noise barely moves thread CPU, so two branches compare on a loaded machine.

Usage: PYTHONPATH=src:bench .venv/bin/python bench/fanout_stages.py [--cards 1000] [--profile TOPIC,...]
(--profile: cProfile of those topics' handlers, the top 40 by cumulative time.)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fake Google Wallet

from benchkit import create_database, drop_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--profile", default="")
    args = parser.parse_args()
    from fakes.google_wallet import FakeGoogleWallet

    url, name = create_database("lwstages")
    fake = FakeGoogleWallet().start()
    assert fake.server is not None
    fake.server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
    os.environ.update(
        {
            "LOYALWALLET_GOOGLE_API_URL": fake.api_url,
            "LOYALWALLET_GOOGLE_TOKEN_URL": fake.token_url,
            "LOYALWALLET_DATA_DIR": tempfile.mkdtemp(prefix="lwstages-"),
        }
    )
    from sqlalchemy import update

    import fanout
    from loyalwallet import db, wiring
    from loyalwallet.campaigns import service as campaigns
    from loyalwallet.config import configure, load_settings
    from loyalwallet.merchants.actors import system
    from loyalwallet.migrations import migrate
    from loyalwallet.outbox import worker
    from loyalwallet.outbox.models import OutboxMessage
    from loyalwallet.wallet.google.models import GoogleObject

    settings = configure(load_settings(Path(os.environ["LOYALWALLET_DATA_DIR"]), url))
    migrate(settings.database_url)
    db.init_engine(settings)
    wiring.install()
    profiled = {t for t in args.profile.split(",") if t}
    try:
        merchant_id, _ = fanout.seed(args.cards, fake, apple=False)

        def campaign(prof: cProfile.Profile | None) -> dict[str, float]:
            with db.transaction() as session:
                session.execute(update(GoogleObject).values(messages=[], notified_at=[]))
                session.execute(
                    update(OutboxMessage).where(OutboxMessage.status == "pending").values(status="done")
                )
            with db.transaction() as session:
                body = {"name": "stages", "header": "Autumn menu", "body": "Pumpkin latte", "send_now": True}
                campaigns.create(session, system(merchant_id), body)
            spent: dict[str, float] = {}
            for _ in range(10):
                msgs = worker.claim(50)
                if not msgs:
                    break
                for msg in msgs:
                    on = prof is not None and msg.topic in profiled
                    started = time.thread_time()
                    if on:
                        prof.enable()  # type: ignore[union-attr]
                    outcome = worker.attempt(msg)
                    if on:
                        prof.disable()  # type: ignore[union-attr]
                    spent[msg.topic] = spent.get(msg.topic, 0.0) + time.thread_time() - started
                    assert outcome.error is None, outcome.error
                    worker.record([outcome])
            return spent

        campaign(None)  # warm-up: caches, the access token, the pool's connections
        prof = cProfile.Profile() if profiled else None
        spent = campaign(prof)
        per_card = {topic: 1000 * s / args.cards for topic, s in spent.items()}
        print(
            ", ".join(f"{t} {ms:.3f}" for t, ms in per_card.items()),
            f"| total {sum(per_card.values()):.3f} ms/card",
        )
        if prof is not None:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    finally:
        fake.stop()
        db.get_engine().dispose()
        drop_database(name)


if __name__ == "__main__":
    main()
