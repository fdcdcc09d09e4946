"""E-mail campaign rate: a whole e-mail campaign (audience, chunks through the outbox,
each guest's message rendered with the card's look, link and List-Unsubscribe, sent over
the process's pooled SMTP connections, LOYALWALLET_SMTP_CONNECTIONS at once, recipients
marked), from the manager's "send" to the last recipient marked sent, against raw
smtplib sending the same number of ready-made messages of the same size over one
connection (`sendmail` in a loop) — the same local SMTP server (aiosmtpd) in the same
run, each side first in every other round. The server runs in a process of its own, as
a mail server does: in the bench's process it would share the GIL with the side being
measured and be slowed by that side's own work. CPU per message (from /proc, robust to
the machine's load) is given for the bench's process (the client side: smtplib, or the
worker with its database) and for the server's.

Usage:  .venv/bin/python bench/email_campaign.py [--guests 1000] [--rounds 5] [--connections N] [--profile FILE]
Runs on a temporary SQLite database (or LOYALWALLET_BENCH_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import smtplib
import statistics
import tempfile
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller

from benchkit import free_port


class Sink:
    """Counts the messages it takes, in a counter the bench's process reads."""

    def __init__(self, count: Any) -> None:
        self.count = count

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count.value += 1
        return "250 OK"


def serve_smtp(port: int, count: Any, ready: Any) -> None:
    controller = Controller(Sink(count), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    threading.Event().wait()  # until the bench terminates this process


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process, from /proc: robust to the machine's load."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_round(port: int, messages: list[tuple[str, bytes]]) -> float:
    t0 = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for to, data in messages:
            smtp.sendmail("bench@loyalwallet.test", [to], data)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--guests", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", help="write a cProfile of the campaign rounds (not the baseline) here")
    ap.add_argument(
        "--connections",
        type=int,
        help="LOYALWALLET_SMTP_CONNECTIONS for the campaign (default: the product's default)",
    )
    ap.add_argument(
        "--driver",
        choices=("worker", "drain"),
        default="worker",
        help="worker: the outbox worker's bulk lane as `loyalwallet worker` runs it "
        "(LOYALWALLET_WORKER_BULK_THREADS threads), without its idle waits; drain: every "
        "row one after the other in one thread (the tests' outbox.worker.drain)",
    )
    args = ap.parse_args()
    if args.connections is not None:
        os.environ["LOYALWALLET_SMTP_CONNECTIONS"] = str(args.connections)
    profiler = cProfile.Profile() if args.profile else None

    tmp = tempfile.mkdtemp(prefix="lw-bench-email-")
    port = free_port()
    os.environ.setdefault(
        "LOYALWALLET_DATABASE_URL",
        os.environ.get("LOYALWALLET_BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.db",
    )
    os.environ["LOYALWALLET_DATA_DIR"] = tmp
    os.environ["LOYALWALLET_SMTP_HOST"] = "127.0.0.1"
    os.environ["LOYALWALLET_SMTP_PORT"] = str(port)
    os.environ["LOYALWALLET_SMTP_TLS"] = "none"
    os.environ["LOYALWALLET_RUN_WORKER"] = "0"

    from loyalwallet import db, wiring
    from loyalwallet.campaigns import service as campaigns
    from loyalwallet.cards.service import enroll
    from loyalwallet.config import configure, load_settings
    from loyalwallet.customers.models import Customer
    from loyalwallet.customers.service import GuestData, record_consent
    from loyalwallet.merchants.actors import system
    from loyalwallet.merchants.service import create_merchant
    from loyalwallet.messaging.campaign_email import compose, render
    from loyalwallet.migrations import migrate
    from loyalwallet.outbox import worker
    from loyalwallet.programs.models import Program
    from loyalwallet.programs.service import create_program

    settings = configure(load_settings())
    migrate(settings.database_url)
    db.init_engine(settings)
    wiring.install()
    received = multiprocessing.Value("q", 0, lock=False)  # written by the server process only
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve_smtp, args=(port, received, ready), daemon=True)
    server.start()
    ready.wait(30)
    try:
        with db.transaction() as session:
            merchant = create_merchant(session, "Bench café")
            actor = system(merchant.id)
            program = create_program(
                session,
                actor,
                "bonus",
                "Bench",
                {"tiers": [{"name": "A", "min_spend": 0, "cashback_pct": 5}]},
            )
            for i in range(args.guests):
                card, _ = enroll(
                    session, actor, program, GuestData(phone=f"+7916{i:07d}", email=f"guest{i}@example.test")
                )
                customer = session.get(Customer, card.customer_id)
                assert customer is not None
                record_consent(session, customer, "marketing", True, "v1", "api")
            merchant_id, program_id = merchant.id, program.id
        # The guests' enrolment queued events (card.created, webhooks, triggers): delivered
        # now, so the timed rounds carry only the campaign's own work.
        worker.drain(max_rounds=10_000)
        # The baseline's messages: what the campaign composes, built beforehand.
        from sqlalchemy import func, select

        from loyalwallet.campaigns.models import Campaign, CampaignRecipient
        from loyalwallet.cards.models import Card
        from loyalwallet.merchants.models import Merchant

        with db.read() as session:
            m = session.get(Merchant, merchant_id)
            p = session.get(Program, program_id)
            sample = Campaign(id=0, header="Pumpkin latte is back", body="Come and taste it this week.")
            rows = session.execute(
                select(Card, Customer).join(Customer, Customer.id == Card.customer_id)
            ).all()
            assert m is not None and p is not None
            template = compose(sample, m, p, None, "ru", "bench@loyalwallet.test")
            messages = [
                (
                    f"x{card.id}@example.test",
                    render(template, m.id, card.public_token, customer.id, f"x{card.id}@example.test"),
                )
                for card, customer in rows
            ]

        raw_times: list[float] = []
        ours_times: list[float] = []
        cpu: dict[str, list[float]] = {"raw": [], "ours": [], "raw server": [], "ours server": []}

        def timed_raw() -> None:
            c0, s0 = time.process_time(), proc_cpu(server_pid)
            raw_times.append(raw_round(port, messages))
            cpu["raw"].append(time.process_time() - c0)
            cpu["raw server"].append(proc_cpu(server_pid) - s0)

        from concurrent.futures import ThreadPoolExecutor

        from loyalwallet.outbox.models import BULK

        # The worker's bulk lane (outbox.worker.Worker._bulk_loop): its batch and threads.
        lanes = worker.Worker(run_periodic=False)
        bulk_pool = ThreadPoolExecutor(lanes.bulk_threads, thread_name_prefix="outbox-bulk")
        server_pid = server.pid
        assert server_pid is not None
        for r in range(args.rounds):
            # Each side goes first in every other round: neither gets the warmer machine.
            if r % 2 == 0:
                timed_raw()
            with db.transaction() as session:
                c = campaigns.create(
                    session,
                    system(merchant_id),
                    {
                        "name": f"round {r}",
                        "header": "Pumpkin latte is back",
                        "body": "Come and taste it this week.",
                        "channel": "email",
                    },
                )
                campaign_id = c.id
            before = received.value
            c0, s0 = time.process_time(), proc_cpu(server_pid)
            t0 = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            # From the manager's "send" to the last recipient marked sent.
            with db.transaction() as session:
                campaigns.send(session, system(merchant_id), campaign_id)
            if args.driver == "worker":
                while worker.run_once(lanes.batch, bulk_pool, lane=BULK):
                    pass
            worker.drain(max_rounds=10_000)  # anything left, e.g. in the interactive lane
            if profiler is not None:
                profiler.disable()
            ours_times.append(time.perf_counter() - t0)
            cpu["ours"].append(time.process_time() - c0)
            cpu["ours server"].append(proc_cpu(server_pid) - s0)
            assert received.value - before == args.guests, (received.value - before, args.guests)
            with db.read() as session:
                done = session.get(Campaign, campaign_id)
                assert done is not None and done.status == "sent", done and done.status
                sent = session.scalar(
                    select(func.count()).where(
                        CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.status == "sent"
                    )
                )
                assert sent == args.guests, (sent, args.guests)
            if r % 2 == 1:
                timed_raw()

        n = args.guests
        raw_rates = [n / t for t in raw_times]
        our_rates = [n / t for t in ours_times]
        ratios = [o / r for o, r in zip(our_rates, raw_rates, strict=True)]

        def fmt(values: list[float]) -> str:
            return f"min {min(values):.0f} / median {statistics.median(values):.0f} / max {max(values):.0f}"

        print(f"guests: {n}, rounds: {args.rounds}, database: {settings.database_url.split(':')[0]}")
        print(f"raw smtplib, one connection (msg/s):      {fmt(raw_rates)}")
        print(f"e-mail campaign, end to end (msg/s):      {fmt(our_rates)}")
        print(
            f"ratio campaign / raw: min {min(ratios):.2f} / median {statistics.median(ratios):.2f} / max {max(ratios):.2f} (goal >= 0.80)"
        )
        from loyalwallet.messaging.email import connections_limit

        print(
            f"SMTP connections (LOYALWALLET_SMTP_CONNECTIONS): {connections_limit()}, driver: {args.driver}"
            + (f" ({lanes.bulk_threads} bulk threads)" if args.driver == "worker" else "")
        )
        for side in cpu:
            per = [1000 * v / n for v in cpu[side]]
            print(
                f"CPU per message, {side + ':':12} min {min(per):.3f} / median {statistics.median(per):.3f} / max {max(per):.3f} ms"
            )
        if profiler is not None:
            profiler.dump_stats(args.profile)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
