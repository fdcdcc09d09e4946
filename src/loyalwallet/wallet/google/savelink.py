"""The "Add to Google Wallet" link: https://pay.google.com/gp/v/save/<JWT>.

The JWT is RS256-signed with the issuer's service-account key and carries the claims
Google specifies: iss (the service account's email), aud "google", typ
"savetowallet", iat, origins (the sites that show the link) and a payload with the
loyalty object. A full object makes the link work even before our REST insert has
reached Google; when that JWT would be longer than is safe in a URL, the object is
inserted over REST first and the JWT carries only its id (a "skinny" JWT).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
import jwt.api_jws
from cryptography.hazmat.primitives.asymmetric import rsa

from loyalwallet.config import env

SAVE_URL = "https://pay.google.com/gp/v/save/"
# Google's guidance for links: encoded JWTs up to about 1800 characters are safe.
MAX_JWT = 1800


def save_base() -> str:
    return env("GOOGLE_SAVE_URL", SAVE_URL) or SAVE_URL


def max_jwt_length() -> int:
    return int(env("GOOGLE_MAX_JWT", str(MAX_JWT)) or MAX_JWT)


def origins(base_url: str) -> list[str]:
    parts = urlsplit(base_url)
    return [f"{parts.scheme}://{parts.netloc}"] if parts.scheme and parts.netloc else []


def sign(
    *,
    email: str,
    key_id: str,
    private_key: rsa.RSAPrivateKey,
    base_url: str,
    objects: list[dict[str, Any]],
    iat: int | None = None,
    kind: str = "loyaltyObjects",
) -> str:
    """`kind`: the payload's list (loyaltyObjects; giftCardObjects for a certificate)."""
    claims = {
        "iss": email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": int(time.time()) if iat is None else iat,
        "origins": origins(base_url),
        "payload": {kind: objects},
    }
    # Compact UTF-8 JSON: PyJWT's own encoder escapes every non-ASCII letter as \uXXXX,
    # which would make a Russian card's link twice as long.
    body = json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode()
    return jwt.api_jws.encode(body, private_key, algorithm="RS256", headers={"kid": key_id, "typ": "JWT"})


def reference(obj: dict[str, Any]) -> dict[str, Any]:
    """The skinny form of an object already inserted over REST."""
    return {"id": obj["id"], "classId": obj["classId"]}
