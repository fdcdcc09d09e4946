"""Apple Wallet benchmark: signed passes per second, APNs pushes per second.

(a) Passes: our builder (pass.json from card facts + prepared images + manifest +
    PKCS#7 signature + zip) against py-pkpass building the same pass, and against
    signing alone (one PKCS#7 detached signature over a manifest of the same size, the
    floor any builder pays). Goals: ≥ 5× py-pkpass, ≥ 80 % of sign-only.
(b) APNs: pushes per second through our client (ApnsClient.push_many; and Pusher.push
    one by one, the outbox handler's path) against raw httpx HTTP/2 doing the same
    requests, all to the same local fake APNs (HTTP/2 + TLS, its own process).
    Goal: ≥ 80 % of raw httpx.

Every figure is measured in the same run and interleaved so that the noise of a shared
machine hits all contenders alike: single operations alternate (our pass, sign-only, and
every 40th time a py-pkpass pass; our push, a raw push) and the rate is 1 / the median
time of one operation; concurrent batches alternate and the median batch rate is taken.

    .venv/bin/python bench/pkpass.py [--passes 3000] [--pushes 1000] [--rounds 7]
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

# The raw httpx side as main's client ran it: without sniffio, httpcore's async side looked
# for it on disk for every request (~20 % of a push); bench/httpx_apns.py sets it aside.
import httpx_apns  # noqa: E402, F401
from benchkit import start_fake_apns  # noqa: E402
from loyalwallet.programs import images  # noqa: E402
from loyalwallet.programs.design import parse_design  # noqa: E402
from loyalwallet.wallet.apple import apns, certs, passes, pkpass  # noqa: E402

STRINGS = {"en.lproj/pass.strings": pkpass.strings_file((s, s) for s in passes.STRINGS)}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def show(samples: dict[str, list[float]], unit: str) -> dict[str, float]:
    """Rates from per-operation times: 1/median, with the 25th-75th percentile range."""
    rates = {}
    for name, times in samples.items():
        q1, med, q3 = statistics.quantiles(times, n=4)
        rates[name] = 1 / med
        print(f"  {name:<36} {1 / med:9.1f} {unit}   (p25-p75 {1 / q3:.1f}..{1 / q1:.1f}, n={len(times)})")
    return rates


# --- (a) passes ----------------------------------------------------------------------------


def bench_passes(count: int) -> dict[str, float]:
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
    samples: dict[str, list[float]] = {
        "loyalwallet builder": [],
        "sign only (PKCS#7 over manifest)": [],
        "py-pkpass 1.0.2": [],
    }
    for i in range(count):
        samples["loyalwallet builder"].append(timed(lambda i=i: ours(i)))
        samples["sign only (PKCS#7 over manifest)"].append(timed(lambda: sign_only(0)))
        if i % 40 == 0:
            samples["py-pkpass 1.0.2"].append(timed(lambda i=i: theirs(i)))
    print(f"(a) signed passes per second (a pass of {len(files) + 3} files, {len(ours(0)) // 1024} KB)")
    rates = show(samples, "passes/s")
    ratios = {
        "builder / py-pkpass": rates["loyalwallet builder"] / rates["py-pkpass 1.0.2"],
        "builder / sign-only": rates["loyalwallet builder"] / rates["sign only (PKCS#7 over manifest)"],
    }
    print(f"  builder / py-pkpass  = {ratios['builder / py-pkpass']:.1f}x   (goal >= 5x)")
    print(f"  builder / sign-only  = {ratios['builder / sign-only']:.0%}   (goal >= 80%)")
    return ratios


# --- (b) APNs ------------------------------------------------------------------------------------


def bench_apns(pushes: int, count: int, concurrency: int) -> dict[str, float]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-apns-"))
    proc, url, ca_file = start_fake_apns(tmp)
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
        headers = {"apns-topic": topic, "content-type": "application/json", "authorization": jwt_header}

        def raw_one(t: str) -> None:
            assert sync_raw.post(f"{url}/3/device/{t}", content=b"{}", headers=headers).status_code == 200

        loop.run_until_complete(ours_batch())  # warm up every connection
        loop.run_until_complete(raw_batch())
        pusher.push(tokens[0], topic)
        raw_one(tokens[0])
        batches: dict[str, list[float]] = {
            f"loyalwallet push_many (x{concurrency})": [],
            f"raw httpx HTTP/2 gather (x{concurrency})": [],
        }
        for _ in range(count):
            batches[f"loyalwallet push_many (x{concurrency})"].append(loop.run_until_complete(ours_batch()))
            batches[f"raw httpx HTTP/2 gather (x{concurrency})"].append(loop.run_until_complete(raw_batch()))
        single: dict[str, list[float]] = {
            "loyalwallet Pusher.push (outbox path)": [],
            "raw httpx sync HTTP/2, one by one": [],
        }
        for t in tokens:
            single["loyalwallet Pusher.push (outbox path)"].append(timed(lambda t=t: pusher.push(t, topic)))
            single["raw httpx sync HTTP/2, one by one"].append(timed(lambda t=t: raw_one(t)))
        print("(b) APNs pushes per second to a local fake APNs (HTTP/2 + TLS, its own process)")
        print(f"  concurrent: {count} alternating batches of {pushes} pushes, median batch rate")
        med = {}
        for name, rates in batches.items():
            med[name] = statistics.median(rates)
            print(f"  {name:<36} {med[name]:9.1f} pushes/s   (min {min(rates):.1f}, max {max(rates):.1f})")
        print(f"  one by one: {pushes} alternating pushes each, 1 / median time of a push")
        one = show(single, "pushes/s")
        names, ones = list(med), list(one)
        ratios = {"concurrent": med[names[0]] / med[names[1]], "one by one": one[ones[0]] / one[ones[1]]}
        print(f"  ours / raw httpx, concurrent = {ratios['concurrent']:.0%}   (goal >= 80%)")
        print(f"  ours / raw httpx, one by one = {ratios['one by one']:.0%}   (goal >= 80%)")
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
    parser.add_argument("--passes", type=int, default=3000, help="passes built (and signatures made)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating push batches")
    parser.add_argument("--pushes", type=int, default=1000, help="pushes per batch")
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    bench_passes(args.passes)
    bench_apns(args.pushes, args.rounds, args.concurrency)


if __name__ == "__main__":
    main()
