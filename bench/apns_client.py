"""APNs client cost: CPU per push of our client (wallet/apple/apns.py, h2 over asyncio TLS)
against the standard client as main used it (httpx, bench/httpx_apns.py), in the same run,
to the same fake APNs (tests/fakes/apns.py in its own process, token auth checked).

Three shapes, each client in turn, rounds alternating which goes first:
- push_many of 100 from one thread (an apple.push batch row), `--batches` times;
- 4 threads each doing push_many of 100 at once (a worker's 4 bulk threads), `--batches` each;
- push one by one (a row of one token), `--singles` times.
CPU is this process's (every thread: the event loop threads included) from
time.process_time(), per push; the fake's CPU is not in it. Rates are printed too, but on a
shared machine the CPU per push is the figure that noise moves least.

    PYTHONPATH=src:bench .venv/bin/python bench/apns_client.py [--rounds 5] [--batches 20] [--singles 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import start_fake_apns  # noqa: E402
from httpx_apns import HttpxPusher  # noqa: E402
from loyalwallet.wallet.apple import apns  # noqa: E402

TOPIC = "pass.dev.loyalwallet"


def measure(fn: Callable[[], int]) -> tuple[float, float]:
    """(CPU ms per push, pushes per second) of fn, which returns its number of pushes."""
    cpu, wall = time.process_time(), time.perf_counter()
    n = fn()
    return (time.process_time() - cpu) * 1000 / n, n / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--singles", type=int, default=300)
    args = parser.parse_args()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    proc, url, ca_file = start_fake_apns(Path(tempfile.mkdtemp(prefix="bench-apns-client-")))
    clients: dict[str, apns.Pusher | HttpxPusher] = {
        "ours (h2)": apns.Pusher(
            url, token_auth=apns.TokenAuth(key, "KEYID00001", "LWDEV00001"), ca_file=ca_file
        ),
        "httpx": HttpxPusher(
            url, token_auth=apns.TokenAuth(key, "KEYID00001", "LWDEV00001"), ca_file=ca_file
        ),
    }
    tokens = [f"{i:064x}" for i in range(100 * args.batches * args.threads)]
    try:
        for client in clients.values():  # connect, sign the provider token
            assert all(r.ok for r in client.push_many([(t, TOPIC) for t in tokens[:100]]))
            assert client.push(tokens[0], TOPIC).ok

        def batches(client: apns.Pusher | HttpxPusher, part: int = 0) -> int:
            for b in range(args.batches):
                start = (part * args.batches + b) * 100
                results = client.push_many([(t, TOPIC) for t in tokens[start : start + 100]])
                assert all(r.ok for r in results), results[0]
            return 100 * args.batches

        def threaded(client: apns.Pusher | HttpxPusher) -> int:
            threads = [threading.Thread(target=batches, args=(client, i)) for i in range(args.threads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return 100 * args.batches * args.threads

        def singles(client: apns.Pusher | HttpxPusher) -> int:
            for t in tokens[: args.singles]:
                assert client.push(t, TOPIC).ok
            return args.singles

        shapes = {
            "push_many(100), 1 thread": batches,
            f"push_many(100), {args.threads} threads at once": threaded,
            "push() one by one": singles,
        }
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for r in range(args.rounds):
            order = list(clients) if r % 2 == 0 else list(reversed(clients))
            for shape, fn in shapes.items():
                for name in order:
                    cpu, rate = measure(lambda fn=fn, name=name: fn(clients[name]))
                    samples.setdefault((shape, name), []).append((cpu, rate))
                    print(
                        f"round {r + 1}: {shape:<34} {name:<10} {cpu:6.3f} ms CPU/push  {rate:7.0f} pushes/s"
                    )
        print(f"\nmedian over {args.rounds} rounds (min..max):")
        for shape in shapes:
            line = []
            for name in clients:
                cpus = [c for c, _ in samples[(shape, name)]]
                rates = [x for _, x in samples[(shape, name)]]
                line.append(
                    f"{name} {statistics.median(cpus):.3f} ms ({min(cpus):.3f}..{max(cpus):.3f}), "
                    f"{statistics.median(rates):.0f}/s"
                )
            ours = statistics.median(c for c, _ in samples[(shape, "ours (h2)")])
            theirs = statistics.median(c for c, _ in samples[(shape, "httpx")])
            print(f"  {shape}: {'; '.join(line)}; CPU ours/httpx {ours / theirs:.2f}")
        print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    finally:
        for client in clients.values():
            client.close()
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


if __name__ == "__main__":
    main()
