"""Service-account key files: read and check one, or make a development one.

A Google Cloud service-account key is a JSON document with `type`
"service_account", `client_email`, `private_key_id`, `private_key` (an RSA key in
PEM) and `token_uri`. We check all of it before anything is stored, so a wrong file
fails at import with a clear message, not later in the worker.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from loyalwallet.errors import DomainError, Explained

DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ISSUER_ID = re.compile(r"^\d{6,20}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class ServiceAccountKey:
    email: str
    key_id: str
    token_uri: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    raw: str = field(repr=False)  # the file as given, stored sealed


def _bad(template: str, **values: Any) -> DomainError:
    return Explained("validation_error", "the service-account key file is not usable: " + template, **values)


def parse_key_file(data: bytes | str) -> ServiceAccountKey:
    """Check a service-account key file; DomainError(validation_error) says what is wrong."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise _bad("it is not JSON (download the key as JSON in Google Cloud Console)") from None
    if not isinstance(doc, dict):
        raise _bad("it is not a JSON object")
    if doc.get("type") != "service_account":
        raise _bad('"type" must be "service_account"')
    email = doc.get("client_email")
    if not isinstance(email, str) or not EMAIL.match(email):
        raise _bad('"client_email" is missing or not an email address')
    key_id = doc.get("private_key_id")
    if not isinstance(key_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key_id):
        raise _bad('"private_key_id" is missing or malformed')
    token_uri = doc.get("token_uri") or DEFAULT_TOKEN_URI
    if not isinstance(token_uri, str) or not re.match(r"^https?://", token_uri):
        raise _bad('"token_uri" must be an http(s) URL')
    pem = doc.get("private_key")
    if not isinstance(pem, str) or "PRIVATE KEY" not in pem:
        raise _bad('"private_key" is missing or not a PEM private key')
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise _bad('"private_key" cannot be read (damaged or encrypted PEM)') from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _bad('"private_key" must be an RSA key')
    if key.key_size < MIN_RSA_BITS:
        raise _bad(
            '"private_key" is only {bits} bits; Google uses {need}', bits=key.key_size, need=MIN_RSA_BITS
        )
    return ServiceAccountKey(email=email, key_id=key_id, token_uri=token_uri, private_key=key, raw=text)


def check_issuer_id(issuer_id: str) -> str:
    value = issuer_id.strip()
    if not ISSUER_ID.match(value):
        error = Explained(
            "validation_error",
            "the issuer id is the number shown in the Google Pay & Wallet Console (digits only)",
        )
        error.extra["field"] = "issuer_id"
        raise error
    return value


def development_key_file(project: str = "loyalwallet-dev") -> str:
    """A key file shaped like Google's, with a fresh RSA key nobody at Google knows.
    Links signed with it are well-formed; Google refuses them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    doc = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"wallet@{project}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**20)),
        "token_uri": DEFAULT_TOKEN_URI,
    }
    return json.dumps(doc, indent=2)


def development_issuer_id() -> str:
    return "3388000000" + f"{secrets.randbelow(10**9):09d}"
