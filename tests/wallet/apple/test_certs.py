"""Importing Apple's certificate: .p12 or PEM, clear errors, nothing stored on failure."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.config import Settings
from loyalwallet.errors import DomainError
from loyalwallet.wallet.apple import certs, credentials
from loyalwallet.wallet.apple.models import AppleCertificate
from support import Shop


@pytest.fixture(scope="module")
def chain() -> certs.PassIdentity:
    return certs.development_chain("pass.test.import", "TESTTEAM01")


def _p12(
    identity: certs.PassIdentity, password: bytes | None, with_wwdr: bool = True, legacy: bool = False
) -> bytes:
    if password is None:
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    elif legacy:  # what older Keychain exports use
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .build(password)
        )
    else:
        encryption = serialization.BestAvailableEncryption(password)
    return pkcs12.serialize_key_and_certificates(
        b"Pass Type ID", identity.key, identity.cert, [identity.wwdr] if with_wwdr else None, encryption
    )


def certificate_count() -> int:
    with db.read() as session:
        return len(session.scalars(select(AppleCertificate.id)).all())


def _pem(cert: certs.PassIdentity) -> bytes:
    return cert.cert.public_bytes(serialization.Encoding.PEM)


def _error(fn, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as err:
        fn(*args)
    assert err.value.code == "certificate_invalid"
    return err.value.detail


def test_a_p12_with_its_password(chain: certs.PassIdentity) -> None:
    for legacy in (False, True):
        identity = certs.read_p12(_p12(chain, b"s3cret", legacy=legacy), "s3cret")
        assert (identity.pass_type_id, identity.team_id, identity.kind) == (
            "pass.test.import",
            "TESTTEAM01",
            "production",
        )
        assert identity.wwdr.subject == chain.wwdr.subject
    assert certs.read_p12(_p12(chain, None), None).fingerprint == chain.fingerprint


def test_broken_p12_and_wrong_password(chain: certs.PassIdentity) -> None:
    good = _p12(chain, b"s3cret")
    assert "wrong password" in _error(certs.read_p12, good, "nope")
    assert "wrong password" in _error(certs.read_p12, good[: len(good) // 2], "s3cret")
    assert "not a .p12" in _error(certs.read_p12, b"hello, I am a text file", "x")
    assert "empty" in _error(certs.read_p12, b"", "x")


def test_the_wwdr_intermediate_is_required_and_checked(chain: certs.PassIdentity, tmp_path: Path) -> None:
    bare = _p12(chain, b"pw", with_wwdr=False)
    assert "AppleWWDRCAG4" in _error(certs.read_p12, bare, "pw")
    wwdr_der = chain.wwdr.public_bytes(serialization.Encoding.DER)  # Apple ships .cer (DER)
    assert certs.read_p12(bare, "pw", wwdr_der).wwdr.subject == chain.wwdr.subject
    other = certs.development_chain("pass.test.other")
    assert "intermediate that issued" in _error(
        certs.read_p12, bare, "pw", other.wwdr.public_bytes(serialization.Encoding.PEM)
    )
    # An expired intermediate (like WWDR G1 since 2023): refused with the reason.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=5000)
    with pytest.raises(DomainError) as err:
        certs.check(chain.cert, chain.key, [chain.wwdr], now=later)
    assert "expired" in err.value.detail


def test_pem_certificate_and_key(chain: certs.PassIdentity) -> None:
    key = chain.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"kp"),
    )
    both = _pem(chain) + chain.wwdr.public_bytes(serialization.Encoding.PEM)
    assert certs.read_pem(both, key, "kp").pass_type_id == "pass.test.import"
    assert "password" in _error(certs.read_pem, both, key, None)
    assert "wrong password" in _error(certs.read_pem, both, key, "bad")
    other = certs.development_chain("pass.test.other")
    other_key = other.key_pem().encode()
    assert "does not belong" in _error(certs.read_pem, both, other_key, None)
    # A certificate that is not a Pass Type ID certificate (no UID=pass.…).
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.com")])
    now = dt.datetime.now(dt.UTC)
    tls = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(chain.key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(chain.key, hashes.SHA256())
    )
    assert "not a Pass Type ID" in _error(certs.check, tls, chain.key, [])
    assert "not a certificate" in _error(
        certs.read_pem, b"-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n", key
    )


def test_stored_sealed_and_used_for_one_merchant(shop: Shop, chain: certs.PassIdentity) -> None:
    imported = certs.read_p12(_p12(chain, b"pw"), "pw")
    with db.transaction() as session:
        row = credentials.store_identity(session, imported, shop.merchant_id)
        assert chain.key_pem().encode() not in row.key_enc  # sealed, not plain
        assert credentials.is_development(session, shop.merchant_id) is False
        info = credentials.status(session, shop.merchant_id)
        assert info["mode"] == "production" and info["scope"] == "merchant"
        assert any("HTTPS" in w for w in info["warnings"])
        assert credentials.identity_of(row).fingerprint == chain.fingerprint
    card = shop.card(shop.program("bonus"))
    from fakes.wallet_device import open_pkpass

    pj = open_pkpass(shop.client.get(card["apple_pass_url"]).content).pass_json
    assert pj["passTypeIdentifier"] == "pass.test.import" and pj["teamIdentifier"] == "TESTTEAM01"
    assert "webServiceURL" not in pj  # a real certificate and plain HTTP: no live updates
    with db.read() as session:
        assert (
            credentials.is_development(session, shop.merchant_id + 10_000) is True
        )  # others: the demo chain


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", "apple", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow(seconds=15)
def test_the_command_line(settings: Settings, shop: Shop, chain: certs.PassIdentity, tmp_path: Path) -> None:
    good = tmp_path / "pass.p12"
    good.write_bytes(_p12(chain, b"s3cret"))
    broken = tmp_path / "broken.p12"
    broken.write_bytes(_p12(chain, b"s3cret")[:300])
    before = certificate_count()
    out = _cli(
        settings,
        "import-cert",
        "--p12",
        str(broken),
        "--password",
        "s3cret",
        "--merchant",
        str(shop.merchant_id),
    )
    assert (
        out.returncode == 2
        and "wrong password, or the file is damaged" in out.stderr
        and "nothing was stored" in out.stderr
    )
    out = _cli(
        settings,
        "import-cert",
        "--p12",
        str(good),
        "--password",
        "wrong",
        "--merchant",
        str(shop.merchant_id),
    )
    assert out.returncode == 2 and "wrong password" in out.stderr
    assert certificate_count() == before
    out = _cli(
        settings,
        "import-cert",
        "--p12",
        str(good),
        "--password",
        "s3cret",
        "--merchant",
        str(shop.merchant_id),
    )
    assert out.returncode == 0, out.stderr
    assert "pass.test.import" in out.stderr and certificate_count() == before + 1
    out = _cli(settings, "status", "--merchant", str(shop.merchant_id), "--json")
    info = json.loads(out.stdout)
    assert info["mode"] == "production" and info["pass_type_id"] == "pass.test.import"
    out = _cli(settings, "status")
    assert "development" in out.stdout and "real iPhones" in out.stdout.replace("\n", " ")


def test_an_apns_key(shop: Shop) -> None:
    with db.transaction() as session, pytest.raises(DomainError):
        credentials.store_push_key(session, b"not a key", "ABCDE12345", "TEAM123456")
    with db.transaction() as session, pytest.raises(DomainError):
        credentials.store_push_key(session, b"whatever", "short", "TEAM123456")
