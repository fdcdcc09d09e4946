"""The issuer key: checked before it is stored, stored sealed; the `loyalwallet google` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.config import Settings
from loyalwallet.errors import DomainError
from loyalwallet.wallet.google.keys import development_key_file, parse_key_file
from loyalwallet.wallet.google.models import GoogleIssuer
from support import Shop


def _with(**changes: object) -> str:
    doc = json.loads(development_key_file())
    doc.update(changes)
    return json.dumps(doc)


def _pem(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json at all", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (_with(type="authorized_user"), '"type" must be "service_account"'),
        (_with(client_email="nobody"), '"client_email"'),
        (
            _with(private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            "cannot be read",
        ),
        (_with(private_key=_pem(ec.generate_private_key(ec.SECP256R1()))), "must be an RSA key"),
        (
            _with(private_key=_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))),
            "only 1024 bits",
        ),
        (_with(token_uri="ftp://x"), '"token_uri"'),
    ],
)
def test_a_malformed_key_file_is_refused_with_a_clear_reason(text: str, says: str) -> None:
    with pytest.raises(DomainError) as err:
        parse_key_file(text)
    assert err.value.code == "validation_error" and says in err.value.detail


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOYALWALLET_DATABASE_URL": settings.database_url,
        "LOYALWALLET_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "loyalwallet.cli", "google", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _issuers(merchant_id: int) -> list[GoogleIssuer]:
    with db.read() as session:
        return list(session.scalars(select(GoogleIssuer).where(GoogleIssuer.merchant_id == merchant_id)))


@pytest.mark.slow(seconds=45)
def test_cli_import_key_checks_stores_sealed_and_reports(
    settings: Settings, shop: Shop, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(_with(private_key="garbage"))
    out = _run(
        settings,
        "import-key",
        str(bad),
        "--issuer-id",
        "3388000000012345678",
        "--merchant",
        str(shop.merchant_id),
    )
    assert out.returncode == 2 and "private_key" in out.stderr and "nothing was stored" in out.stderr
    assert _issuers(shop.merchant_id) == []

    good = tmp_path / "key.json"
    key_text = development_key_file()
    good.write_text(key_text)
    out = _run(settings, "import-key", str(good), "--issuer-id", "33-88", "--merchant", str(shop.merchant_id))
    assert out.returncode == 2 and "issuer id" in out.stderr and _issuers(shop.merchant_id) == []
    out = _run(settings, "import-key", str(tmp_path / "missing.json"), "--issuer-id", "3388000000012345678")
    assert out.returncode == 2 and "cannot read" in out.stderr

    out = _run(
        settings,
        "import-key",
        str(good),
        "--issuer-id",
        "3388000000012345678",
        "--merchant",
        str(shop.merchant_id),
    )
    assert out.returncode == 0, out.stderr
    (row,) = _issuers(shop.merchant_id)
    doc = json.loads(key_text)
    assert row.issuer_id == "3388000000012345678" and row.service_account_email == doc["client_email"]
    assert b"PRIVATE KEY" not in row.key_sealed and doc["private_key_id"].encode() not in row.key_sealed

    status = _run(settings, "status", "--merchant", str(shop.merchant_id), "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["configured"] and info["issuers"][0]["key_id"] == doc["private_key_id"]
    assert _run(settings, "remove", "--merchant", str(shop.merchant_id)).returncode == 0
    assert _issuers(shop.merchant_id) == []
