"""What Google Wallet costs the POS hot path: a purchase on a card of a merchant with
Google Wallet configured vs one without, in the same run, on the same database.

Every purchase answer shows the card, with its google_save_url. With Google configured
that is a cached, signed link (one primary-key read); it is signed once per card, at
the card's first write. The bench prints:
- the ratio of the median purchase time (Google configured / not), after each card's
  link was made, interleaving the kinds so machine noise hits all alike: with the link
  remembered in memory, and read from the database (a process new to the card);
- the one-off cost of making a card's link (build the object, RSA-sign the JWT) against
  a purchase without Google.

Usage: .venv/bin/python bench/google_links.py [--purchases 600] [--cards 50] [--database-url URL]
Default: SQLite in a temporary directory (the embedded default).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--purchases", type=int, default=600)
    parser.add_argument("--cards", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lwbench-google-"))
    from loyalwallet import db, wiring
    from loyalwallet.config import configure, load_settings

    settings = configure(load_settings(tmp, args.database_url or f"sqlite:///{tmp / 'bench.db'}"))
    db.init_engine(settings)
    wiring.install()  # as every entry point: handlers, hooks, wallet sources
    from loyalwallet.migrations import migrate

    migrate(settings.database_url)

    from sqlalchemy import select

    from loyalwallet.cards.models import Card
    from loyalwallet.cards.service import enroll
    from loyalwallet.cards.views import card_view
    from loyalwallet.checkout.schemas import PurchaseIn
    from loyalwallet.checkout.service import purchase
    from loyalwallet.customers.service import GuestData
    from loyalwallet.merchants.actors import Actor, system
    from loyalwallet.merchants.service import create_location, create_merchant
    from loyalwallet.programs.models import Program
    from loyalwallet.programs.service import create_program
    from loyalwallet.wallet.google import caches
    from loyalwallet.wallet.google.issuer import import_key
    from loyalwallet.wallet.google.keys import development_key_file

    rules = {"tiers": [{"name": "Base", "min_spend": 0, "cashback_pct": 5}], "welcome_points": 100}
    shops: dict[str, tuple[Actor, list[str]]] = {}
    for label in ("plain", "google"):
        with db.transaction() as session:
            merchant = create_merchant(session, f"Bench {label}")
            location = create_location(session, system(merchant.id), "Main")
            program = create_program(session, system(merchant.id), "bonus", "Bonus", rules)
            actor = Actor(merchant_id=merchant.id, role="cashier", kind="system", location_id=location.id)
            if label == "google":
                # A real-looking issuer (not a development one): links are signed and
                # google.patch rows are queued, as in production. No worker runs here.
                import_key(session, development_key_file(), "3388000000012345678", merchant.id)
            codes = []
            for n in range(args.cards):
                guest = GuestData(phone=f"+7916{merchant.id:02d}{n:05d}", name="Гость")
                card, _ = enroll(session, actor, session.get(Program, program.id), guest)
                codes.append(card.code)
        shops[label] = (actor, codes)

    def buy(label: str, n: int, cold: bool = False) -> float:
        actor, codes = shops[label]
        if cold:  # as in a process that has not shown this card yet: the link is read from the database
            caches.links.clear()
        body = PurchaseIn(card=codes[n % len(codes)], amount=25000)
        started = time.perf_counter()
        with db.transaction() as session:
            purchase(session, actor, body)
        return time.perf_counter() - started

    # First writes: plain purchases vs the purchases that make each card's link.
    first = {"plain": [buy("plain", n) for n in range(args.cards)], "google": []}
    first["google"] = [buy("google", n) for n in range(args.cards)]
    with db.read() as session:
        links = session.scalars(
            select(Card.id).where(Card.merchant_id == shops["google"][0].merchant_id)
        ).all()
        actor = shops["google"][0]
        card = session.get(Card, links[0])
        view = card_view(session, card, session.get(Program, card.program_id))
        assert view["google_save_url"].startswith("https://pay.google.com/gp/v/save/"), view[
            "google_save_url"
        ]

    # Steady state, interleaved.
    def interleaved(cold: bool) -> tuple[float, float]:
        times: dict[str, list[float]] = {"plain": [], "google": []}
        for n in range(args.purchases):
            for label in ("plain", "google") if n % 2 else ("google", "plain"):
                times[label].append(buy(label, n, cold=cold and label == "google"))
        return statistics.median(times["plain"]), statistics.median(times["google"])

    plain, with_google = interleaved(cold=False)
    plain_cold, cold = interleaved(cold=True)
    first_plain, first_google = statistics.median(first["plain"]), statistics.median(first["google"])
    print(
        f"database: {settings.database_url.split(':')[0]}, {args.cards} cards per merchant, {args.purchases} purchases each"
    )
    print(f"purchase, median: without Google {plain * 1000:.2f} ms, with Google {with_google * 1000:.2f} ms")
    print(f"ratio with/without Google (steady state): {with_google / plain:.3f}")
    print(f"ratio with/without Google, link read from the database each time: {cold / plain_cold:.3f}")
    print(
        f"first purchase of a card (link made and signed): {first_google * 1000:.2f} ms "
        f"vs {first_plain * 1000:.2f} ms without Google, ratio {first_google / first_plain:.2f}"
    )


if __name__ == "__main__":
    main()
