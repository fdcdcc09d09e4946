"""An iPhone's Wallet as the PassKit web service sees it, and a strict .pkpass reader.

`open_pkpass()` does what a device does before it accepts a pass: unzips it, checks that
manifest.json lists the SHA-1 of every other file, and verifies the detached PKCS#7
signature over manifest.json with OpenSSL (`openssl cms -verify -binary -inform DER
-noverify`, and against the development root when given).
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Pkpass:
    files: dict[str, bytes]

    @property
    def pass_json(self) -> dict[str, Any]:
        return json.loads(self.files["pass.json"])

    @property
    def manifest(self) -> dict[str, str]:
        return json.loads(self.files["manifest.json"])


def openssl_verify(
    signature: bytes, manifest: bytes, ca_file: str | None = None
) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        sig, man = Path(tmp, "signature"), Path(tmp, "manifest.json")
        sig.write_bytes(signature)
        man.write_bytes(manifest)
        args = [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(sig),
            "-content",
            str(man),
        ]
        args += ["-CAfile", ca_file, "-purpose", "any"] if ca_file else ["-noverify"]
        return subprocess.run([*args, "-out", "/dev/null"], capture_output=True, text=True, timeout=30)


def signed_attributes(signature: bytes) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        sig = Path(tmp, "signature")
        sig.write_bytes(signature)
        out = subprocess.run(
            ["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(sig)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    return out.stdout


def open_pkpass(data: bytes, ca_file: str | None = None) -> Pkpass:
    """A checked pass; AssertionError on anything a device would refuse."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None, "corrupt zip entry"
        files = {info.filename: zf.read(info) for info in zf.infolist()}
    assert {"pass.json", "manifest.json", "signature"} <= files.keys(), sorted(files)
    assert all("/" not in n or n.split("/")[0].endswith(".lproj") for n in files), (
        "files must sit at the root"
    )
    manifest = json.loads(files["manifest.json"])
    listed = set(manifest)
    present = set(files) - {"manifest.json", "signature"}
    assert listed == present, listed ^ present
    for name, digest in manifest.items():
        assert hashlib.sha1(files[name]).hexdigest() == digest, f"SHA-1 of {name} does not match the manifest"
    result = openssl_verify(files["signature"], files["manifest.json"])
    assert result.returncode == 0, result.stderr
    if ca_file:
        chained = openssl_verify(files["signature"], files["manifest.json"], ca_file)
        assert chained.returncode == 0, chained.stderr
    return Pkpass(files)


@dataclass
class Device:
    """One device library: registers passes, asks what changed, downloads passes."""

    client: Any  # TestClient or httpx.Client pointed at the server
    prefix: str = "/wallet/apple/v1"
    device_id: str = field(default_factory=lambda: secrets.token_hex(16))
    push_token: str = field(default_factory=lambda: secrets.token_hex(32))
    tag: str | None = None
    last_modified: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"ApplePass {token}"}

    def register(
        self, pass_type_id: str, serial: str, token: str, push_token: str | None = None
    ) -> httpx.Response:
        return self.client.post(
            f"{self.prefix}/devices/{self.device_id}/registrations/{pass_type_id}/{serial}",
            json={"pushToken": push_token or self.push_token},
            headers=self.auth(token),
        )

    def unregister(self, pass_type_id: str, serial: str, token: str) -> httpx.Response:
        return self.client.delete(
            f"{self.prefix}/devices/{self.device_id}/registrations/{pass_type_id}/{serial}",
            headers=self.auth(token),
        )

    def changed(self, pass_type_id: str, tag: str | None = "use-mine") -> httpx.Response:
        """GET the serials changed since our last tag; remember the new one on 200."""
        since = self.tag if tag == "use-mine" else tag
        params = {"passesUpdatedSince": since} if since else {}
        r = self.client.get(
            f"{self.prefix}/devices/{self.device_id}/registrations/{pass_type_id}", params=params
        )
        if r.status_code == 200:
            self.tag = r.json()["lastUpdated"]
        return r

    def fetch(self, pass_type_id: str, serial: str, token: str, conditional: bool = True) -> httpx.Response:
        headers = self.auth(token)
        if conditional and serial in self.last_modified:
            headers["If-Modified-Since"] = self.last_modified[serial]
        r = self.client.get(f"{self.prefix}/passes/{pass_type_id}/{serial}", headers=headers)
        if r.status_code == 200 and "last-modified" in r.headers:
            self.last_modified[serial] = r.headers["last-modified"]
        return r

    def log(self, lines: list[Any]) -> httpx.Response:
        return self.client.post(f"{self.prefix}/log", json={"logs": lines})
