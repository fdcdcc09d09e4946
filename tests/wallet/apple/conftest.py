"""Apple Wallet fixtures: the installation's development certificate, a local fake APNs
(HTTP/2 over TLS, token auth checked) wired in through LOYALWALLET_APNS_URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fakes.apns import FakeApns
from loyalwallet import db
from loyalwallet.wallet.apple import certs, credentials
from loyalwallet.wallet.apple.models import AppleCertificate

KEY_ID = "KEYID00001"


@pytest.fixture(scope="session", autouse=True)
def apple_cert(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> AppleCertificate:
    """The installation's development certificate (what the demo makes)."""
    with db.transaction() as session:
        row = credentials.ensure_development_certificate(session)
        session.expunge(row)
    return row


@pytest.fixture(scope="session")
def dev_root(apple_cert: AppleCertificate, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The development chain (intermediate + fake root) as a CA file for OpenSSL."""
    path = tmp_path_factory.mktemp("apple") / "dev-chain.pem"
    path.write_text(apple_cert.chain_pem)
    return str(path)


@pytest.fixture(scope="session")
def team_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def apns_fake(
    apple_cert: AppleCertificate,
    team_key: ec.EllipticCurvePrivateKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FakeApns]:
    """The fake APNs, and our APNs key for the development team, used by the outbox."""
    fake = FakeApns(
        Path(tmp_path_factory.mktemp("apns")),
        team_key=team_key.public_key(),
        key_id=KEY_ID,
        team_id=certs.DEV_TEAM_ID,
        topic=apple_cert.pass_type_id,
    ).start()
    p8 = team_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with db.transaction() as session:
        credentials.store_push_key(session, p8, KEY_ID, certs.DEV_TEAM_ID)
    old = {k: os.environ.get(k) for k in ("LOYALWALLET_APNS_URL", "LOYALWALLET_APNS_CA_FILE")}
    os.environ["LOYALWALLET_APNS_URL"] = fake.url
    os.environ["LOYALWALLET_APNS_CA_FILE"] = fake.ca_file
    yield fake
    credentials.reset_caches()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    fake.stop()


@pytest.fixture
def apns(apns_fake: FakeApns) -> FakeApns:
    apns_fake.reset()
    return apns_fake
