"""Apple Wallet benchmark: signed passes per second, APNs pushes per second.

(a) Passes: our builder (pass.json from card facts + prepared images + manifest +
    PKCS#7 signature + zip) against py-pkpass building the same pass, and against
    signing alone (one PKCS#7 detached signature over a manifest of the same size, the
    floor any builder pays). Goals: ≥ 5× py-pkpass, ≥ 80 % of sign-only.
(b) APNs: pushes per second through our client (ApnsClient.push_many; and Pusher.push
    one by one, the outbox handler's path) against raw httpx HTTP/2 doing the same
    requests, all to the same local fake APNs (HTTP/2 + TLS, its own process).
    Goal: ≥ 80 % of raw httpx.

Every figure is measured in the same run, in interleaved rounds so that the noise of a
shared machine hits all contenders alike; the ratio of medians is printed.

    .venv/bin/python bench/pkpass.py [--seconds 2] [--rounds 5] [--pushes 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from loyalwallet.programs import images  # noqa: E402
from loyalwallet.programs.design import parse_design  # noqa: E402
from loyalwallet.wallet.apple import apns, certs, passes, pkpass  # noqa: E402

STRINGS = {"en.lproj/pass.strings": pkpass.strings_file((s, s) for s in passes.STRINGS)}


def rate(fn: Callable[[int], object], seconds: float) -> float:
    """Calls per second of fn(i) over about `seconds`."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        fn(n)
        n += 1
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def rounds(contenders: dict[str, Callable[[], float]], count: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(count):
        for name, measure in contenders.items():
            out[name].append(measure())
    return out


def show(results: dict[str, list[float]], unit: str) -> None:
    for name, values in results.items():
        print(
            f"  {name:<34} median {statistics.median(values):9.1f} {unit}"
            f"   (min {min(values):.1f}, max {max(values):.1f})"
        )


# --- (a) passes ----------------------------------------------------------------------------


def bench_passes(seconds: float, count: int) -> dict[str, float]:
    identity = certs.development_chain()
    design = parse_design({"front_fields": ["balance", "tier", "holder", "next_tier"]})
    rendered = {}
    for scale in images.SCALES:
        suffix = "" if scale == 1 else f"@{scale}x"
        rendered[f"icon{suffix}.png"] = images.icon(design, scale)
        rendered[f"logo{suffix}.png"] = images.logo(design, scale)
        rendered[f"strip{suffix}.png"] = images.strip(design, scale)
    files = {n: r.data for n, r in rendered.items()} | STRINGS
    fileset = pkpass.FileSet(files, {n: r.sha1 for n, r in rendered.items()})
    signer = pkpass.Signer(identity)
    issuer = passes.Issuer(
        identity.pass_type_id, identity.team_id, "Кофейня «Зерно»", "https://x/wallet/apple"
    )

    def facts(i: int) -> passes.CardFacts:
        return passes.CardFacts(
            kind="bonus",
            program_name="Зерно Бонус",
            serial=f"serial{i:016d}",
            auth_token="t" * 32,
            code="1234567890128",
            balance=100 + i,
            tier="Silver",
            cashback="7%",
            holder="Анна",
            next_tier="Gold: 12 000.00 ₽",
            web_card_url="https://x/c/abc",
        )

    def ours(i: int) -> bytes:
        return pkpass.build(passes.store_card(issuer, facts(i), design, design.colours), fileset, signer)

    manifest = fileset.manifest(b"{}" * 700)

    def sign_only(_: int) -> bytes:
        return signer.sign(manifest)

    # py-pkpass reads the certificate, key and WWDR from files (its API).
    tmp = Path(tempfile.mkdtemp(prefix="bench-pkpass-"))
    (tmp / "cert.pem").write_text(identity.cert_pem())
    (tmp / "key.pem").write_text(identity.key_pem())
    (tmp / "wwdr.pem").write_bytes(identity.wwdr.public_bytes(serialization.Encoding.PEM))
    from py_pkpass.models import Barcode, BarcodeFormat, Pass, StoreCard

    def theirs(i: int) -> bytes:
        f = facts(i)
        info = StoreCard()
        info.addHeaderField("balance", f.balance, "Points")
        info.addPrimaryField("tier", f.tier, "Level")
        info.addSecondaryField("discount", f.cashback, "Cashback")
        info.addSecondaryField("holder", f.holder, "Member")
        info.addAuxiliaryField("next_tier", f.next_tier, "Next level")
        info.addBackField("back_code", f.code, "Card number")
        p = Pass(
            info,
            passTypeIdentifier=issuer.pass_type_id,
            organizationName=issuer.organization,
            teamIdentifier=issuer.team_id,
        )
        p.serialNumber = f.serial
        p.description = "Зерно Бонус"
        p.barcode = Barcode(message=f.code, format=BarcodeFormat.QR)
        p.webServiceURL = issuer.web_service_url
        p.authenticationToken = f.auth_token
        for name, data in files.items():
            p.addFile(name, io.BytesIO(data))
        return p.create(str(tmp / "cert.pem"), str(tmp / "key.pem"), str(tmp / "wwdr.pem"), "").getvalue()

    assert len(ours(0)) > 10_000 and len(theirs(0)) > 10_000
    results = rounds(
        {
            "loyalwallet builder": lambda: rate(ours, seconds),
            "sign only (PKCS#7 over manifest)": lambda: rate(sign_only, seconds),
            "py-pkpass 1.0.2": lambda: rate(theirs, min(seconds, 1.5)),
        },
        count,
    )
    print(
        f"(a) signed passes per second (pass with {len(files)} images/strings files, {len(ours(0)) // 1024} KB)"
    )
    show(results, "passes/s")
    med = {k: statistics.median(v) for k, v in results.items()}
    ratios = {
        "builder / py-pkpass": med["loyalwallet builder"] / med["py-pkpass 1.0.2"],
        "builder / sign-only": med["loyalwallet builder"] / med["sign only (PKCS#7 over manifest)"],
    }
    per_round = [
        o / s
        for o, s in zip(
            results["loyalwallet builder"], results["sign only (PKCS#7 over manifest)"], strict=True
        )
    ]
    print(f"  builder / py-pkpass  = {ratios['builder / py-pkpass']:.1f}x   (goal >= 5x)")
    print(
        f"  builder / sign-only  = {ratios['builder / sign-only']:.0%}   (goal >= 80%; per round "
        f"{min(per_round):.0%}..{max(per_round):.0%})"
    )
    return ratios


# --- (b) APNs ------------------------------------------------------------------------------------


def start_fake(directory: Path) -> tuple[subprocess.Popen[str], str, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "fakes" / "apns.py"),
            "--port",
            str(port),
            "--dir",
            str(directory),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        raise RuntimeError(f"fake APNs did not start: {line!r}")
    return proc, f"https://127.0.0.1:{port}", str(directory / "apns-cert.pem")


def bench_apns(pushes: int, count: int, concurrency: int) -> dict[str, float]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-apns-"))
    proc, url, ca_file = start_fake(tmp)
    topic = "pass.dev.loyalwallet"
    tokens = [f"{i:064x}" for i in range(pushes)]
    auth = apns.TokenAuth(key, "KEYID00001", "LWDEV00001")
    jwt_header = auth.header()
    loop = asyncio.new_event_loop()
    try:
        ours = loop.run_until_complete(_make(lambda: apns.ApnsClient(url, token_auth=auth, ca_file=ca_file)))
        raw = loop.run_until_complete(
            _make(
                lambda: httpx.AsyncClient(
                    http1=False, http2=True, verify=ssl.create_default_context(cafile=ca_file), timeout=10
                )
            )
        )

        async def ours_batch() -> float:
            start = time.perf_counter()
            results = await ours.push_many([(t, topic) for t in tokens], concurrency)
            assert all(r.ok for r in results)
            return pushes / (time.perf_counter() - start)

        async def raw_batch() -> float:
            gate = asyncio.Semaphore(concurrency)
            headers = {"apns-topic": topic, "content-type": "application/json", "authorization": jwt_header}

            async def one(token: str) -> None:
                async with gate:
                    r = await raw.post(f"{url}/3/device/{token}", content=b"{}", headers=headers)
                    assert r.status_code == 200

            start = time.perf_counter()
            await asyncio.gather(*(one(t) for t in tokens))
            return pushes / (time.perf_counter() - start)

        pusher = apns.Pusher(base_url=url, token_auth=auth, ca_file=ca_file)
        sync_raw = httpx.Client(
            http1=False, http2=True, verify=ssl.create_default_context(cafile=ca_file), timeout=10
        )
        few = tokens[: max(200, pushes // 10)]

        def ours_one_by_one() -> float:
            start = time.perf_counter()
            for t in few:
                assert pusher.push(t, topic).ok
            return len(few) / (time.perf_counter() - start)

        def raw_one_by_one() -> float:
            headers = {"apns-topic": topic, "content-type": "application/json", "authorization": jwt_header}
            start = time.perf_counter()
            for t in few:
                assert sync_raw.post(f"{url}/3/device/{t}", content=b"{}", headers=headers).status_code == 200
            return len(few) / (time.perf_counter() - start)

        loop.run_until_complete(ours_batch())  # warm up both connections
        loop.run_until_complete(raw_batch())
        results = rounds(
            {
                f"loyalwallet push_many (x{concurrency})": lambda: loop.run_until_complete(ours_batch()),
                f"raw httpx HTTP/2 gather (x{concurrency})": lambda: loop.run_until_complete(raw_batch()),
                "loyalwallet Pusher.push, sequential": ours_one_by_one,
                "raw httpx sync HTTP/2, sequential": raw_one_by_one,
            },
            count,
        )
        print(
            f"(b) APNs pushes per second to a local fake APNs (HTTP/2 + TLS, its own process), {pushes} per batch"
        )
        show(results, "pushes/s")
        med = {k: statistics.median(v) for k, v in results.items()}
        names = list(med)
        ratios = {"concurrent": med[names[0]] / med[names[1]], "sequential": med[names[2]] / med[names[3]]}
        print(f"  ours / raw httpx, concurrent = {ratios['concurrent']:.0%}   (goal >= 80%)")
        print(f"  ours / raw httpx, sequential = {ratios['sequential']:.0%}")
        pusher.close()
        sync_raw.close()
        loop.run_until_complete(ours.aclose())
        loop.run_until_complete(raw.aclose())
        return ratios
    finally:
        loop.close()
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _make(factory: Callable[[], object]) -> object:
    return factory()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="per contender per round (passes)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pushes", type=int, default=2000, help="pushes per batch")
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.rounds} interleaved rounds")
    bench_passes(args.seconds, args.rounds)
    bench_apns(args.pushes, args.rounds, args.concurrency)


if __name__ == "__main__":
    main()
