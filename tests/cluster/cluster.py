"""The multi-host installation of docs/scaling.md, built in network namespaces.

    db     PostgreSQL (its own initdb in a temp dir, `postgres` listening on the host's address)
    app1/2 `loyalwallet serve` (no embedded worker), the data dir (secrets) copied to each
    w1/w2  `loyalwallet worker`
    lb     Caddy with deploy/Caddyfile.cluster (internal CA), the only address guests use
    root   the test itself: the guests (HTTP clients) and the fake APNs

Used by tests/cluster/test_cluster.py (failures in the middle) and bench/multihost.py
(purchases/s through the balancer with one and two app hosts).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from caddy_support import DEPLOY, Caddy, caddyfile_for_test, have_caddy, start_caddy
from cluster.netns import Host, Network, can_build
from fakes.apns import FakeApns
from fakes.wallet_device import Device, open_pkpass
from loyalwallet.wallet.apple import certs

KEY_ID = "CLUSTERK01"
SHIPPED_UPSTREAMS = "10.0.0.11:8000 10.0.0.12:8000"
RETRYABLE = {409, 429, 502, 503, 504}  # 409: the same key still in flight elsewhere


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def missing() -> str | None:
    """Why the cluster cannot be built here, or None."""
    if not have_caddy():
        return "Debian's caddy package is not installed"
    if postgres_bin() is None:
        return "PostgreSQL server binaries are not installed"
    return can_build()


@dataclass
class Ack:
    key: str
    purchase_id: int
    attempts: int
    replayed: bool
    at: float


@dataclass
class Load:
    """Purchases from `clients` threads, each retried with its Idempotency-Key until acked."""

    acks: list[Ack] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # answers that were not retried
    gave_up: list[str] = field(default_factory=list)
    failed_attempts: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def join(self, timeout: float = 300) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout)


class Cluster:
    def __init__(self, work: Path, app_hosts: int = 2, worker_hosts: int = 2) -> None:
        self.work = work
        self.net = Network()
        self.pg_dir = Path(tempfile.mkdtemp(prefix="lwc-pg-"))
        self.db = self.net.add("db", 10)
        self.apps = [self.net.add(f"app{i + 1}", 11 + i) for i in range(app_hosts)]
        self.workers = [self.net.add(f"w{i + 1}", 21 + i) for i in range(worker_hosts)]
        self.lb = self.net.add("lb", 2)
        self.database_url = f"postgresql://postgres@{self.db.address}:5432/loyalwallet"
        self.base_url = f"https://{self.lb.address}"
        self.serve: dict[str, subprocess.Popen[bytes]] = {}
        self.worker_procs: dict[str, subprocess.Popen[bytes]] = {}
        self.caddy: Caddy | None = None
        self.apns: FakeApns | None = None
        self.keys: dict[str, str] = {}  # merchant label -> owner API key
        self.env: dict[str, str] = {}

    # --- building ------------------------------------------------------------------------

    def start_database(self) -> None:
        pg = postgres_bin()
        assert pg is not None
        os.chmod(self.pg_dir, 0o755)
        shutil.chown(self.pg_dir, "postgres", "postgres")
        data = self.pg_dir / "data"
        subprocess.run(
            [
                *("runuser", "-u", "postgres", "--", str(pg / "initdb"), "-D", str(data)),
                *("-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        with (data / "pg_hba.conf").open("a") as f:
            f.write(f"host all all {self.net.subnet} trust\n")
        postmaster = self.db.spawn(
            [
                *("runuser", "-u", "postgres", "--", str(pg / "postgres"), "-D", str(data)),
                *(
                    "-c",
                    f"listen_addresses={self.db.address}",
                    "-c",
                    f"unix_socket_directories={self.pg_dir}",
                ),
                *("-c", "max_connections=400", "-c", "shared_buffers=128MB"),
            ],
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            log=self.work / "postgres.log",
        )
        deadline = time.monotonic() + 60
        while subprocess.run(
            [str(pg / "pg_isready"), "-q", "-h", self.db.address], capture_output=True
        ).returncode:
            assert postmaster.poll() is None, (self.work / "postgres.log").read_text()
            assert time.monotonic() < deadline, (self.work / "postgres.log").read_text()
            time.sleep(0.2)
        subprocess.run(
            [str(pg / "createdb"), "-h", self.db.address, "-U", "postgres", "loyalwallet"],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def base_env(self, data_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALWALLET_")}
        env.update(
            LOYALWALLET_DATA_DIR=str(data_dir),
            LOYALWALLET_DATABASE_URL=self.database_url,
            LOYALWALLET_BASE_URL=self.base_url,
            LOYALWALLET_RUN_WORKER="0",
            LOYALWALLET_TRUSTED_PROXIES=self.lb.address,
            LOYALWALLET_WORKER_LEASE_SECONDS="10",
            LOYALWALLET_WORKER_HEARTBEAT_SECONDS="1",
            LOYALWALLET_DB_PROCESSES=str(len(self.apps) + len(self.workers)),
        )
        return env

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loyalwallet.cli", *args],
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def install(self, merchants: tuple[str, ...] = ("till", "campaign")) -> None:
        """migrate, merchants, the Apple certificate and APNs key, from the operator's seat
        (the root namespace reaches the database host over the bridge)."""
        self.env = self.base_env(self.work / "data")
        r = self.cli("migrate")
        assert r.returncode == 0, r.stderr
        team_key = ec.generate_private_key(ec.SECP256R1())
        p8 = self.work / "AuthKey.p8"
        p8.write_bytes(
            team_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        with ThreadPoolExecutor(4) as pool:
            made = {m: pool.submit(self.cli, "merchant", "create", "--name", m, "--json") for m in merchants}
            cert_f = pool.submit(self.cli, "apple", "dev-cert")
            key_f = pool.submit(
                self.cli, "apple", "import-push-key", "--p8", str(p8), "--key-id", KEY_ID, "--team-id",
                certs.DEV_TEAM_ID,
            )  # fmt: skip
            for m, f in made.items():
                out = f.result()
                assert out.returncode == 0, out.stderr
                self.keys[m] = json.loads(out.stdout)["api_key"]
            cert, key = cert_f.result(), key_f.result()
        assert cert.returncode == 0 and key.returncode == 0, cert.stderr + key.stderr
        ptid = re.search(r"\((pass\.[^)]+)\)", cert.stdout + cert.stderr)
        assert ptid, cert.stdout
        self.apns = FakeApns(
            self.work / "apns",
            team_key=team_key.public_key(),
            key_id=KEY_ID,
            team_id=certs.DEV_TEAM_ID,
            topic=ptid.group(1),
            host=self.net.gateway,
        ).start()
        self.env.update(LOYALWALLET_APNS_URL=self.apns.url, LOYALWALLET_APNS_CA_FILE=self.apns.ca_file)

    def host_env(self, host: Host) -> dict[str, str]:
        """The host's own copy of the data dir (the secrets are deployed to every host)."""
        data = self.work / f"data-{host.name}"
        if not data.exists():
            shutil.copytree(self.work / "data", data)
        env = self.base_env(data)
        env.update(LOYALWALLET_APNS_URL=self.env["LOYALWALLET_APNS_URL"])
        env.update(LOYALWALLET_APNS_CA_FILE=self.env["LOYALWALLET_APNS_CA_FILE"])
        return env

    def start_app(self, host: Host) -> None:
        self.serve[host.name] = host.spawn(
            [sys.executable, "-m", "loyalwallet.cli", "serve", "--host", host.address, "--port", "8000"],
            env=self.host_env(host),
            log=self.work / f"{host.name}.log",
        )

    def start_worker(self, host: Host) -> None:
        self.worker_procs[host.name] = host.spawn(
            [sys.executable, "-m", "loyalwallet.cli", "worker"],
            env=self.host_env(host),
            log=self.work / f"{host.name}.log",
        )

    def start_balancer(self, apps: list[Host] | None = None) -> None:
        """Caddy on the lb host in front of these app hosts (all by default)."""
        if self.caddy is not None:
            self.caddy.stop()
        upstreams = " ".join(f"{h.address}:8000" for h in (apps or self.apps))
        config = caddyfile_for_test(
            DEPLOY / "Caddyfile.cluster",
            site=self.lb.address,
            upstreams={SHIPPED_UPSTREAMS: upstreams},
            http_port=80,
            https_port=443,
        )
        self.caddy = start_caddy(
            self.work / "caddy", config, prefix=["ip", "netns", "exec", self.lb.namespace]
        )
        self.lb.processes.append(self.caddy.process)

    def wait_ready(self, apps: list[Host] | None = None, timeout: float = 180) -> None:
        """Every app host answers /readyz directly, and the balancer answers over HTTPS."""
        deadline = time.monotonic() + timeout
        for host in apps or self.apps:
            while True:
                try:
                    if httpx.get(f"http://{host.address}:8000/readyz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                proc = self.serve[host.name]
                assert proc.poll() is None, (self.work / f"{host.name}.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (self.work / f"{host.name}.log").read_text()[-3000:]
                time.sleep(0.3)
        assert self.caddy is not None
        self.caddy.wait_for_ca(timeout)
        with self.client() as c:
            while True:
                try:
                    if c.get("/readyz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, self.caddy.log.read_text()[-3000:]
                time.sleep(0.3)

    def client(self, merchant: str | None = None, timeout: float = 60) -> httpx.Client:
        assert self.caddy is not None
        verify = ssl.create_default_context(cafile=str(self.caddy.root_ca))
        headers = {"Authorization": f"Bearer {self.keys[merchant]}"} if merchant else {}
        return httpx.Client(base_url=self.base_url, verify=verify, headers=headers, timeout=timeout)

    def close(self) -> None:
        if self.apns is not None:
            self.apns.stop()
        self.net.close()
        shutil.rmtree(self.pg_dir, ignore_errors=True)

    # --- what guests and tills do --------------------------------------------------------

    def program_with_cards(self, merchant: str, cards: int, consent: bool = False) -> list[str]:
        with self.client(merchant) as c:
            r = c.post(
                "/api/v1/programs",
                json={
                    "kind": "bonus",
                    "name": "Бонусы",
                    "rules": {"tiers": [{"name": "B", "min_spend": 0, "cashback_pct": 5}]},
                },
            )
            assert r.status_code == 201, r.text
            program = r.json()["id"]

            def one(i: int) -> str:
                phone = f"+7916{uuid.uuid4().int % 10_000_000:07d}"
                made = c.post(
                    "/api/v1/cards",
                    json={"program_id": program, "phone": phone, "marketing_consent": consent},
                )
                assert made.status_code == 201, made.text
                return str(made.json()["code"])

            with ThreadPoolExecutor(4) as pool:
                return list(pool.map(one, range(cards)))

    def register_devices(self, merchant: str, codes: list[str]) -> dict[str, str]:
        """A device per card: download the pass, register it. {card code: push token}."""
        tokens: dict[str, str] = {}
        with self.client(merchant) as c:

            def one(code: str) -> tuple[str, str]:
                card = c.get(f"/api/v1/cards/{code}")
                assert card.status_code == 200, card.text
                r = c.get(card.json()["apple_pass_url"])
                assert r.status_code == 200, r.text
                pj = open_pkpass(r.content).pass_json
                assert pj["webServiceURL"] == f"{self.base_url}/wallet/apple"
                device = Device(c)
                reg = device.register(pj["passTypeIdentifier"], pj["serialNumber"], pj["authenticationToken"])
                assert reg.status_code == 201, reg.text
                return code, device.push_token

            with ThreadPoolExecutor(4) as pool:
                tokens.update(pool.map(one, codes))
        return tokens

    def start_load(self, merchant: str, codes: list[str], clients: int, give_up_after: float = 180) -> Load:
        load = Load()

        def run(n: int) -> None:
            with self.client(merchant, timeout=30) as c:
                i = 0
                while not load.stop.is_set():
                    key = uuid.uuid4().hex
                    body = {"card": codes[(n * 7919 + i) % len(codes)], "amount": 10000 + i % 5000}
                    i += 1
                    attempts, started = 0, time.monotonic()
                    while True:
                        attempts += 1
                        try:
                            r = c.post("/api/v1/purchases", headers={"Idempotency-Key": key}, json=body)
                        except httpx.HTTPError as exc:
                            status, detail = 0, repr(exc)
                        else:
                            status, detail = r.status_code, r.text[:300]
                            if status == 201:
                                ack = Ack(
                                    key,
                                    int(r.json()["id"]),
                                    attempts,
                                    r.headers.get("Idempotent-Replayed") == "true",
                                    time.monotonic(),
                                )
                                with load.lock:
                                    load.acks.append(ack)
                                break
                        if status and status not in RETRYABLE and status < 500:
                            with load.lock:
                                load.failures.append(f"{status} {detail}")
                            break
                        with load.lock:
                            load.failed_attempts += 1
                        if time.monotonic() - started > give_up_after:
                            with load.lock:
                                load.gave_up.append(f"{key}: {status} {detail}")
                            break
                        time.sleep(0.2)

        for n in range(clients):
            t = threading.Thread(target=run, args=(n,), daemon=True)
            t.start()
            load.threads.append(t)
        return load


@contextmanager
def built(work: Path, app_hosts: int = 2, worker_hosts: int = 2) -> Iterator[Cluster]:
    """A running cluster (database, app hosts, workers, balancer); always taken down."""
    cluster = Cluster(work, app_hosts, worker_hosts)
    try:
        cluster.start_database()
        cluster.install()
        for host in cluster.apps:
            cluster.start_app(host)
        for host in cluster.workers:
            cluster.start_worker(host)
        cluster.start_balancer()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()


def sql(cluster: Cluster, query: str, **params: Any) -> list[Any]:
    from sqlalchemy import create_engine, text

    from loyalwallet.config import normalise_database_url

    engine = create_engine(normalise_database_url(cluster.database_url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query), params).all())
    finally:
        engine.dispose()
