"""Purchases/s through the Caddy balancer with one and with two app hosts (root).

The cluster of tests/cluster (network namespaces: PostgreSQL, app hosts, two workers, Caddy
from deploy/Caddyfile.cluster) on this one machine. Each round measures both shapes back to
back — the balancer restarted in front of app1 only, then of app1 + app2 — with the same
clients (threads in the root namespace, each purchase with its Idempotency-Key, over HTTPS
through the balancer). Printed: purchases/s per shape, min/median/max over the rounds, and
the ratio two hosts / one host measured in the same round.

Every host shares this machine's cores (and PostgreSQL's), so the ratio shows what a
second app host buys when the app hosts — not the database — are the limit here; on one
box it cannot exceed what the cores give.

    sudo .venv/bin/python bench/multihost.py --seconds 20 --rounds 3 --clients 16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cluster.cluster import Cluster, built, missing  # noqa: E402


def measure(cluster: Cluster, codes: list[str], apps: int, seconds: float, clients: int) -> float:
    cluster.start_balancer(cluster.apps[:apps])
    cluster.wait_ready(cluster.apps[:apps])
    load = cluster.start_load("till", codes, clients=clients)
    time.sleep(3)  # warm-up: connections, caches
    start_count, start = len(load.acks), time.monotonic()
    time.sleep(seconds)
    done, elapsed = len(load.acks), time.monotonic() - start
    load.join()
    assert not load.failures and not load.gave_up, (load.failures[:3], load.gave_up[:3])
    return (done - start_count) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--cards", type=int, default=200)
    args = parser.parse_args()
    why = missing()
    if why:
        sys.exit(f"cannot build the cluster: {why}")
    rates: dict[int, list[float]] = {1: [], 2: []}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lwc-bench-") as work, built(Path(work)) as cluster:
        codes = cluster.program_with_cards("till", args.cards)
        for n in range(args.rounds):
            one = measure(cluster, codes, 1, args.seconds, args.clients)
            two = measure(cluster, codes, 2, args.seconds, args.clients)
            rates[1].append(one)
            rates[2].append(two)
            ratios.append(two / one)
            print(f"round {n + 1}: 1 app host {one:.1f}/s, 2 app hosts {two:.1f}/s, ratio {two / one:.2f}")
    for apps, values in rates.items():
        print(
            f"{apps} app host(s): purchases/s min {min(values):.1f} / median {statistics.median(values):.1f}"
            f" / max {max(values):.1f}"
        )
    print(
        f"ratio 2/1: min {min(ratios):.2f} / median {statistics.median(ratios):.2f} / max {max(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
