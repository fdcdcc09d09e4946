"""The guest's "Rate your visit" page on a phone: its weight (bytes of every response the
page loads) and its load time (Navigation Timing: responseStart, DOMContentLoaded, load)
in headless Chromium with a 390×844 phone viewport, against the web card page of the
same guest measured in the same run as the baseline.

Usage:  .venv/bin/python bench/feedback_page.py [--rounds 15]
Runs the app (uvicorn, in a thread) on a temporary SQLite database; needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from typing import Any

from benchkit import free_port


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="lw-bench-feedback-")
    port = free_port()
    os.environ["LOYALWALLET_DATABASE_URL"] = f"sqlite:///{tmp}/bench.db"
    os.environ["LOYALWALLET_DATA_DIR"] = tmp
    os.environ["LOYALWALLET_RUN_WORKER"] = "0"
    os.environ["LOYALWALLET_BASE_URL"] = f"http://127.0.0.1:{port}"

    import uvicorn
    from playwright.sync_api import sync_playwright

    from loyalwallet import db, wiring
    from loyalwallet.api.app import create_app
    from loyalwallet.cards.service import enroll
    from loyalwallet.checkout.schemas import PurchaseIn
    from loyalwallet.checkout.service import purchase
    from loyalwallet.config import configure, load_settings
    from loyalwallet.customers.service import GuestData
    from loyalwallet.feedback.service import rate_path, set_settings
    from loyalwallet.merchants.actors import system
    from loyalwallet.merchants.service import create_location, create_merchant
    from loyalwallet.migrations import migrate
    from loyalwallet.programs.service import create_program

    settings = configure(load_settings())
    migrate(settings.database_url)
    db.init_engine(settings)
    wiring.install()
    with db.transaction() as session:
        merchant = create_merchant(session, "Bench café")
        actor = system(merchant.id)
        location = create_location(session, actor, "Main")
        program = create_program(
            session, actor, "bonus", "Bench", {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 5}]}
        )
        set_settings(session, actor, {"enabled": True})
        card, _ = enroll(session, actor, program, GuestData(phone="+79161234567", name="Anna"))
        code, token = card.code, card.public_token
        merchant_id, location_id = merchant.id, location.id
    with db.transaction() as session:
        _status, response, _ = purchase(
            session, system(merchant_id), PurchaseIn(card=code, amount=35_000, location_id=location_id)
        )
    with db.read() as session:
        from loyalwallet.cards.models import Card

        card_row = session.get(Card, card.id)
        assert card_row is not None
        rate = rate_path(card_row, int(response["id"]))

    app = create_app(settings, run_worker=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    pages = {"rate": f"{base}{rate}", "web card (baseline)": f"{base}/c/{token}"}
    results: dict[str, dict[str, list[float]]] = {
        name: {"bytes": [], "requests": [], "ttfb": [], "dcl": [], "load": []} for name in pages
    }
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
            )
            for r in range(args.rounds + 1):
                for name, url in pages.items():
                    # A fresh context each time: nothing cached, as a guest opening the link.
                    context = browser.new_context(
                        viewport={"width": 390, "height": 844},
                        device_scale_factor=3,
                        is_mobile=True,
                        locale="ru-RU",
                    )
                    page = context.new_page()
                    sizes: list[int] = []

                    def on_response(resp: Any, sizes: list[int] = sizes) -> None:
                        try:
                            sizes.append(len(resp.body()))
                        except Exception:
                            pass

                    page.on("response", on_response)
                    page.goto(url, wait_until="load")
                    timing = page.evaluate(
                        "() => { const t = performance.getEntriesByType('navigation')[0];"
                        " return [t.responseStart, t.domContentLoadedEventEnd, t.loadEventEnd]; }"
                    )
                    context.close()
                    if r == 0:
                        continue  # warm-up (the server's first templates compile)
                    res = results[name]
                    res["bytes"].append(sum(sizes))
                    res["requests"].append(len(sizes))
                    res["ttfb"].append(timing[0])
                    res["dcl"].append(timing[1])
                    res["load"].append(timing[2])
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    def fmt(values: list[float], unit: str) -> str:
        return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f} {unit}"

    print(
        f"rounds: {args.rounds}; phone viewport 390x844, a fresh browser context per load; min / median / max"
    )
    for name, res in results.items():
        print(
            f"{name:22s} weight {fmt(res['bytes'], 'B')} in {statistics.median(res['requests']):.0f} requests; "
            f"TTFB {fmt(res['ttfb'], 'ms')}; DOMContentLoaded {fmt(res['dcl'], 'ms')}; load {fmt(res['load'], 'ms')}"
        )
    rate_med = statistics.median(results["rate"]["load"])
    card_med = statistics.median(results["web card (baseline)"]["load"])
    weight = statistics.median(results["rate"]["bytes"]) / statistics.median(
        results["web card (baseline)"]["bytes"]
    )
    print(f"ratio rate page / web card: weight {weight:.2f}, load time {rate_med / card_med:.2f}")


if __name__ == "__main__":
    main()
