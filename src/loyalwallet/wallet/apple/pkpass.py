"""Building and signing a .pkpass: pass.json + files + manifest.json + signature, zipped.

- manifest.json: the SHA-1 of every file but itself and the signature.
- signature: a DETACHED PKCS#7 (CMS) over manifest.json with the pass certificate as
  signer and the WWDR intermediate included, with the signingTime attribute (cryptography
  adds contentType, signingTime and messageDigest). The Binary option keeps the manifest
  bytes as they are: without it line endings are canonicalised before hashing and a
  pretty-printed manifest would not verify.

Speed: a pass is signed on every download and every update, so everything that does not
depend on the card is prepared once. Images (and the localisation files) of a look are a
`FileSet` that carries their SHA-1s and their ready-made zip entries; per pass only
pass.json, the manifest and the signature are new. The zip is written here from those
pieces (STORED entries, which a pkpass wants anyway: PNGs do not compress) because
zipfile re-computes the CRC of every image on every pass and costs three signatures.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from loyalwallet.wallet.apple.certs import PassIdentity

MEDIA_TYPE = "application/vnd.apple.pkpass"

# A fixed timestamp (1980-01-01 00:00, the DOS epoch) keeps archives reproducible.
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")


@dataclass(frozen=True)
class _Entry:
    name: bytes
    local: bytes  # local header + data
    central: bytes  # central directory record without the trailing offset and name
    size: int


def _entry(name: str, data: bytes) -> _Entry:
    raw = name.encode()
    crc = zlib.crc32(data)
    local = _LOCAL.pack(0x04034B50, 20, 0, 0, _DOS_TIME, _DOS_DATE, crc, len(data), len(data), len(raw), 0)
    central = _CENTRAL.pack(
        0x02014B50, 20, 20, 0, 0, _DOS_TIME, _DOS_DATE, crc, len(data), len(data), len(raw), 0, 0, 0, 0, 0, 0
    )[:-4]  # the local header offset is packed per archive
    return _Entry(raw, local + raw + data, central, len(local) + len(raw) + len(data))


class FileSet:
    """The files of a pass that do not change from card to card (images, strings),
    prepared once: their SHA-1s for the manifest and their zip entries."""

    def __init__(self, files: dict[str, bytes], sha1s: dict[str, str] | None = None) -> None:
        reserved = {"pass.json", "manifest.json", "signature"}
        if reserved & files.keys():
            raise ValueError("pass.json, manifest.json and signature are written by the builder")
        self.names = tuple(files)
        self.hashes = {n: (sha1s or {}).get(n) or hashlib.sha1(d).hexdigest() for n, d in files.items()}
        entries = [_entry(n, d) for n, d in files.items()]
        blob, central, offset = [], [], 0
        for e in entries:
            blob.append(e.local)
            central.append((e.central, offset, e.name))
            offset += e.size
        self._blob = b"".join(blob)
        self._central = central
        self.size = offset

    def manifest(self, pass_json: bytes) -> bytes:
        return orjson.dumps({**self.hashes, "pass.json": hashlib.sha1(pass_json).hexdigest()})

    def archive(self, tail: Iterable[tuple[str, bytes]]) -> bytes:
        """The zip: these prepared files, then the per-pass ones."""
        extra = [_entry(n, d) for n, d in tail]
        parts = [self._blob]
        directory = [c + struct.pack("<I", off) + name for c, off, name in self._central]
        offset = self.size
        for e in extra:
            parts.append(e.local)
            directory.append(e.central + struct.pack("<I", offset) + e.name)
            offset += e.size
        cd = b"".join(directory)
        count = len(directory)
        parts.append(cd)
        parts.append(_END.pack(0x06054B50, 0, 0, count, count, len(cd), offset, 0))
        return b"".join(parts)


class Signer:
    """Signs manifests with one pass certificate; keep one per certificate (loading an
    RSA key costs as much as a hundred signatures)."""

    def __init__(self, identity: PassIdentity) -> None:
        self.identity = identity
        self._cert = identity.cert
        self._key = identity.key
        self._wwdr = identity.wwdr
        self._options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]

    def sign(self, manifest: bytes) -> bytes:
        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(manifest)
            .add_signer(self._cert, self._key, hashes.SHA256())
            .add_certificate(self._wwdr)
            .sign(serialization.Encoding.DER, self._options)
        )


def build(pass_json: dict[str, Any], files: FileSet, signer: Signer) -> bytes:
    """A signed .pkpass from the pass.json content and the prepared files."""
    body = orjson.dumps(pass_json)
    manifest = files.manifest(body)
    signature = signer.sign(manifest)
    return files.archive((("pass.json", body), ("manifest.json", manifest), ("signature", signature)))


def manifest_of(pass_json: dict[str, Any], files: FileSet) -> bytes:
    """The manifest alone (an ETag of the whole pass, without signing)."""
    return files.manifest(orjson.dumps(pass_json))


# --- pass.strings (localisation) -------------------------------------------------------------


def strings_file(pairs: Iterable[tuple[str, str]]) -> bytes:
    """An Apple .strings file ("key" = "value";) in UTF-16 with a BOM, as PassKit reads it."""

    def quote(s: str) -> str:
        return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    text = "".join(f'"{quote(k)}" = "{quote(v)}";\n' for k, v in pairs)
    return text.encode("utf-16")
