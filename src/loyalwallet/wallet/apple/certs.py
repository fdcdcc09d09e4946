"""Pass signing material: reading Apple's certificate (.p12 or PEM), checking it, and
the self-signed development chain the demo uses when there is none.

Pure crypto, no database: `read_p12` / `read_pem` return a checked `PassIdentity` or
raise DomainError("certificate_invalid") with a message a café owner can act on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from loyalwallet.errors import DomainError, Explained

DEV_PASS_TYPE_ID = "pass.dev.loyalwallet"
DEV_TEAM_ID = "LWDEV00001"
DEV_ORG = "loyalwallet development chain (not Apple)"
WWDR_HELP = (
    "download the Apple Worldwide Developer Relations G4 intermediate "
    "(AppleWWDRCAG4.cer from https://www.apple.com/certificateauthority/) and add it "
    "(the WWDR file on the Wallets page, or --wwdr)"
)

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class PassIdentity:
    """A pass certificate with its private key and the intermediate(s) that issued it."""

    cert: x509.Certificate
    key: SigningKey
    chain: tuple[x509.Certificate, ...]  # WWDR first; the development root may follow
    pass_type_id: str
    team_id: str
    kind: str  # development | production

    @property
    def wwdr(self) -> x509.Certificate:
        """The intermediate that goes into every signature (never the root)."""
        return self.chain[0]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    @property
    def not_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()

    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def chain_pem(self) -> str:
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.chain)

    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()


def _bad(template: str, **values: Any) -> DomainError:
    """certificate_invalid with an English template the pages translate (errors.Explained)."""
    return Explained("certificate_invalid", template, **values)


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def check(
    cert: x509.Certificate,
    key: object,
    extra: list[x509.Certificate],
    *,
    kind: str = "production",
    now: dt.datetime | None = None,
) -> PassIdentity:
    """Check that `cert` is a usable Pass Type ID certificate for `key`, and find the
    intermediate that issued it among `extra`."""
    now = now or dt.datetime.now(dt.UTC)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise _bad("the private key must be RSA or EC (Apple issues RSA keys)")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise _bad("the private key does not belong to this certificate")
    pass_type_id = _attr(cert.subject, NameOID.USER_ID)
    team_id = _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not pass_type_id or not pass_type_id.startswith("pass."):
        raise _bad(
            "this is not a Pass Type ID certificate: its subject has no UID=pass.… (subject: {subject})",
            subject=cert.subject.rfc4514_string(),
        )
    if not team_id:
        raise _bad("the certificate has no OU (the Apple team identifier)")
    if cert.not_valid_after_utc <= now:
        raise _bad(
            "the certificate expired on {date}; make a new one at Apple",
            date=f"{cert.not_valid_after_utc:%Y-%m-%d}",
        )
    if cert.not_valid_before_utc > now:
        raise _bad("the certificate is not valid before {date}", date=f"{cert.not_valid_before_utc:%Y-%m-%d}")
    issuers = [c for c in extra if _issued_by(cert, c)]
    if not issuers:
        raise _bad(
            "the intermediate that issued this certificate is missing (issuer: {issuer}); " + WWDR_HELP,
            issuer=cert.issuer.rfc4514_string(),
        )
    wwdr = issuers[0]
    if wwdr.not_valid_after_utc <= now:
        raise _bad(
            "the intermediate {subject} expired on {date} (passes signed with it do not open); " + WWDR_HELP,
            subject=wwdr.subject.rfc4514_string(),
            date=f"{wwdr.not_valid_after_utc:%Y-%m-%d}",
        )
    rest = tuple(c for c in extra if c is not wwdr and c.subject != cert.subject)
    chain = (wwdr, *rest) if kind == "development" else (wwdr,)
    return PassIdentity(cert, key, chain, pass_type_id, team_id, kind)


NOT_A_CERTIFICATE = {
    "cert": "the certificate file is not a certificate (PEM or DER)",
    "wwdr": "the WWDR file is not a certificate (PEM or DER)",
}


def _load_certs(data: bytes, what: str) -> list[x509.Certificate]:
    """PEM (one or more) or DER, as Apple hands them out (.cer is DER)."""
    try:
        if b"-----BEGIN" in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise _bad(NOT_A_CERTIFICATE[what]) from None


def read_p12(data: bytes, password: str | None, wwdr: bytes | None = None) -> PassIdentity:
    """A .p12 exported from Keychain Access (certificate + private key)."""
    if not data:
        raise _bad("the .p12 file is empty")
    if data[:1] != b"\x30":
        raise _bad("this is not a .p12 (PKCS#12) file")
    try:
        bundle = pkcs12.load_pkcs12(data, password.encode() if password else None)
    except ValueError:
        raise _bad("cannot open the .p12: wrong password, or the file is damaged") from None
    if bundle.cert is None or bundle.key is None:
        raise _bad("the .p12 must hold the pass certificate and its private key")
    extra = [c.certificate for c in bundle.additional_certs]
    if wwdr:
        extra += _load_certs(wwdr, "wwdr")
    return check(bundle.cert.certificate, bundle.key, extra)


def read_pem(
    cert: bytes, key: bytes, key_password: str | None = None, wwdr: bytes | None = None
) -> PassIdentity:
    """The certificate (PEM/DER, optionally followed by the intermediate) and its key."""
    certs = _load_certs(cert, "cert")
    try:
        private = serialization.load_pem_private_key(key, key_password.encode() if key_password else None)
    except TypeError:
        raise _bad("the private key is encrypted: give its password") from None
    except ValueError:
        raise _bad("cannot read the private key: wrong password or not a PEM key") from None
    extra = certs[1:] + (_load_certs(wwdr, "wwdr") if wwdr else [])
    return check(certs[0], private, extra)


def load_identity(cert_pem: str, key_pem: str, chain_pem: str, kind: str) -> PassIdentity:
    """Rebuild a stored identity (already checked at import)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
    chain = tuple(x509.load_pem_x509_certificates(chain_pem.encode()))
    return PassIdentity(
        cert,
        key,
        chain,
        _attr(cert.subject, NameOID.USER_ID) or "",
        _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) or "",
        kind,
    )


# --- the development chain -----------------------------------------------------------------


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def _ca(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    days: int,
    path_length: int | None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def development_chain(pass_type_id: str = DEV_PASS_TYPE_ID, team_id: str = DEV_TEAM_ID) -> PassIdentity:
    """A fake root, a fake "WWDR G4"-like intermediate and a pass certificate shaped like
    Apple's (UID = pass type id, OU = team id). Passes signed with it verify with
    OpenSSL against the fake root; iPhones refuse them: they need Apple's certificate."""
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    mid_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pass_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = _name(
        (NameOID.COMMON_NAME, "loyalwallet Development Root CA"), (NameOID.ORGANIZATION_NAME, DEV_ORG)
    )
    mid_name = _name(
        (NameOID.COMMON_NAME, "loyalwallet Development Pass Intermediate (WWDR G4 stand-in)"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "G4"),
        (NameOID.ORGANIZATION_NAME, DEV_ORG),
    )
    root = _ca(root_name, root_key, root_name, root_key, 3650, 1)
    mid = _ca(mid_name, mid_key, root_name, root_key, 3650, 0)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            _name(
                (NameOID.USER_ID, pass_type_id),
                (NameOID.COMMON_NAME, f"Pass Type ID: {pass_type_id}"),
                (NameOID.ORGANIZATIONAL_UNIT_NAME, team_id),
                (NameOID.ORGANIZATION_NAME, DEV_ORG),
            )
        )
        .issuer_name(mid_name)
        .public_key(pass_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(mid_key, hashes.SHA256())
    )
    return check(cert, pass_key, [mid, root], kind="development")
