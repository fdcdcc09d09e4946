"""The signed .pkpass: manifest, detached PKCS#7 with signing time, the zip, localisation."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from fakes.wallet_device import open_pkpass, openssl_verify, signed_attributes
from loyalwallet.programs.design import parse_design
from loyalwallet.wallet.apple import certs, passes, pkpass
from loyalwallet.wallet.apple.models import AppleCertificate


@pytest.fixture(scope="module")
def identity() -> certs.PassIdentity:
    return certs.development_chain("pass.test.pkpass")


def _files() -> pkpass.FileSet:
    return pkpass.FileSet(
        {
            "icon.png": b"\x89PNG fake icon",
            "icon@2x.png": b"\x89PNG bigger",
            "ru.lproj/pass.strings": pkpass.strings_file([("Points", "Баллы")]),
        }
    )


def _pass_json() -> dict:
    design = parse_design({})
    issuer = passes.Issuer("pass.test.pkpass", certs.DEV_TEAM_ID, "Кофейня", "https://x/wallet/apple")
    f = passes.CardFacts(
        kind="bonus", program_name="Зерно", serial="S" * 22, auth_token="T" * 32, code="1234567890128"
    )
    return passes.store_card(issuer, f, design, design.colours)


def test_a_pass_verifies_with_openssl_and_its_manifest_lists_every_file(
    identity: certs.PassIdentity, tmp_path: Path
) -> None:
    data = pkpass.build(_pass_json(), _files(), pkpass.Signer(identity))
    ca = tmp_path / "chain.pem"
    ca.write_text(identity.chain_pem())
    p = open_pkpass(data, str(ca))  # -noverify, and the whole chain against the fake root
    assert set(p.manifest) == {"icon.png", "icon@2x.png", "ru.lproj/pass.strings", "pass.json"}
    assert p.pass_json["serialNumber"] == "S" * 22
    attrs = signed_attributes(p.files["signature"])
    assert "signingTime" in attrs and "messageDigest" in attrs
    # Only the intermediate travels with the signature, never the root.
    assert "Development Pass Intermediate" in attrs and attrs.count("Development Root CA") <= 2
    if shutil.which("unzip"):
        path = tmp_path / "card.pkpass"
        path.write_bytes(data)
        assert subprocess.run(["unzip", "-tq", str(path)], capture_output=True).returncode == 0


def test_binary_mode_keeps_line_endings(identity: certs.PassIdentity) -> None:
    manifest = b'{\n  "pass.json" : "abc"\r\n}\n'
    signature = pkpass.Signer(identity).sign(manifest)
    assert openssl_verify(signature, manifest).returncode == 0
    assert openssl_verify(signature, manifest.replace(b"\r\n", b"\n")).returncode != 0


def test_the_zip_is_the_same_as_zipfiles_reading(identity: certs.PassIdentity) -> None:
    files = _files()
    data = pkpass.build(_pass_json(), files, pkpass.Signer(identity))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist()[:3] == ["icon.png", "icon@2x.png", "ru.lproj/pass.strings"]
        assert zf.read("icon.png") == b"\x89PNG fake icon"
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
    with pytest.raises(ValueError):
        pkpass.FileSet({"pass.json": b"{}"})


def test_strings_are_utf16_and_escaped() -> None:
    data = pkpass.strings_file([('Say "hi"', "Скажи\n«привет»")])
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
    assert data.decode("utf-16") == '"Say \\"hi\\"" = "Скажи\\n«привет»";\n'


def test_the_pass_is_translated_to_russian(shop, apple_cert: AppleCertificate) -> None:  # type: ignore[no-untyped-def]
    card = shop.card(shop.program("bonus"))
    p = open_pkpass(shop.client.get(card["apple_pass_url"]).content)
    ru = p.files["ru.lproj/pass.strings"].decode("utf-16")
    en = p.files["en.lproj/pass.strings"].decode("utf-16")
    assert '"Points" = "Баллы";' in ru and '"You have %@ points" = ' in ru
    assert '"Points" = "Points";' in en
    labels = {f["label"] for part in p.pass_json["storeCard"].values() for f in part}
    missing = [label for label in labels if f'"{label}" = ' not in ru]
    assert missing == []
    for name in (
        "icon.png",
        "icon@2x.png",
        "icon@3x.png",
        "logo.png",
        "logo@2x.png",
        "logo@3x.png",
        "strip.png",
        "strip@2x.png",
        "strip@3x.png",
    ):
        assert name in p.files
