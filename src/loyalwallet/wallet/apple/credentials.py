"""Stored Apple credentials: pass certificates (sealed keys), APNs keys, and the cached
signers and push clients made from them.

`status()` / `is_development()` tell the admin page whether real iPhones can take the
passes (a production certificate imported from Apple) or not (the development chain).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from loyalwallet import crypto
from loyalwallet.config import get_settings
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError, Explained
from loyalwallet.wallet.apple import apns
from loyalwallet.wallet.apple.certs import (
    PassIdentity,
    development_chain,
    load_identity,
    read_p12,
    read_pem,
)
from loyalwallet.wallet.apple.models import AppleCertificate, ApplePushKey
from loyalwallet.wallet.apple.pkpass import Signer

EXPIRY_WARNING = dt.timedelta(days=30)  # warn this long before the certificate expires
_INSTALLATION = 0  # the merchant id sealed keys of the installation's certificate are bound to


def _seal_scope(merchant_id: int | None) -> int:
    return merchant_id if merchant_id is not None else _INSTALLATION


# --- import -------------------------------------------------------------------------------


def store_identity(
    session: Session, identity: PassIdentity, merchant_id: int | None = None
) -> AppleCertificate:
    """Make `identity` the active certificate of the installation (merchant_id None) or of
    one merchant. The private key is sealed (AES-GCM) and bound to this certificate."""
    session.execute(
        update(AppleCertificate)
        .where(
            AppleCertificate.merchant_id.is_(None)
            if merchant_id is None
            else AppleCertificate.merchant_id == merchant_id,
            AppleCertificate.active.is_(True),
        )
        .values(active=False)
    )
    fingerprint = identity.fingerprint
    row = AppleCertificate(
        merchant_id=merchant_id,
        kind=identity.kind,
        pass_type_id=identity.pass_type_id,
        team_id=identity.team_id,
        subject=identity.subject[:500],
        fingerprint=fingerprint,
        cert_pem=identity.cert_pem(),
        key_enc=crypto.seal(
            identity.key_pem(), merchant_id=_seal_scope(merchant_id), column=f"apple_key:{fingerprint}"
        ),
        chain_pem=identity.chain_pem(),
        not_after=identity.not_after,
        active=True,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def import_certificate(
    session: Session,
    *,
    p12: bytes | None = None,
    password: str | None = None,
    cert: bytes | None = None,
    key: bytes | None = None,
    key_password: str | None = None,
    wwdr: bytes | None = None,
    merchant_id: int | None = None,
) -> AppleCertificate:
    """What `apple import-cert` and the Wallets page do: read a .p12 (with its password) or
    a certificate + key, check them, and store the identity (the key sealed). A bad file
    raises certificate_invalid before anything is written."""
    if p12 is not None:
        identity = read_p12(p12, password, wwdr)
    elif cert is not None and key is not None:
        identity = read_pem(cert, key, key_password, wwdr)
    else:
        raise Explained("certificate_invalid", "give a .p12 file, or the certificate and its private key")
    if merchant_id is not None:
        from loyalwallet.merchants.service import get_merchant

        get_merchant(session, merchant_id)
    return store_identity(session, identity, merchant_id)


def store_push_key(session: Session, p8: bytes, key_id: str, team_id: str) -> ApplePushKey:
    """An APNs auth key (.p8) for token-based pushes; checked by signing a token."""
    key_id, team_id = key_id.strip(), team_id.strip()
    if not (key_id.isalnum() and len(key_id) == 10):
        raise Explained(
            "certificate_invalid", "the APNs key id is 10 letters and digits (see the .p8 file name)"
        )
    if not (team_id.isalnum() and len(team_id) == 10):
        raise Explained("certificate_invalid", "the team id is 10 letters and digits")
    try:
        auth = apns.TokenAuth(p8, key_id, team_id)
        auth.header()
    except Exception:
        raise Explained(
            "certificate_invalid", "cannot read the .p8: it must be the APNs auth key file Apple gave you"
        ) from None
    session.execute(update(ApplePushKey).where(ApplePushKey.team_id == team_id).values(active=False))
    row = ApplePushKey(
        team_id=team_id,
        key_id=key_id,
        key_enc=crypto.seal(p8.decode(), merchant_id=_INSTALLATION, column=f"apns_key:{team_id}:{key_id}"),
        active=True,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def ensure_development_certificate(session: Session) -> AppleCertificate:
    """The installation's certificate; the development chain is made when there is none."""
    row = installation_certificate(session)
    if row is None:
        row = store_identity(session, development_chain())
    return row


# --- lookup ---------------------------------------------------------------------------------


def installation_certificate(session: Session) -> AppleCertificate | None:
    return session.scalar(
        select(AppleCertificate)
        .where(AppleCertificate.merchant_id.is_(None), AppleCertificate.active.is_(True))
        .order_by(AppleCertificate.id.desc())
        .limit(1)
    )


def certificate_for(session: Session, merchant_id: int) -> AppleCertificate | None:
    """The merchant's own active certificate, else the installation's."""
    rows = session.scalars(
        select(AppleCertificate)
        .where(
            or_(AppleCertificate.merchant_id == merchant_id, AppleCertificate.merchant_id.is_(None)),
            AppleCertificate.active.is_(True),
        )
        .order_by(AppleCertificate.merchant_id.is_(None), AppleCertificate.id.desc())
    ).all()
    return rows[0] if rows else None


def can_sign(session: Session, merchant_id: int) -> bool:
    """Whether this merchant's passes can be signed (its certificate or the installation's)."""
    return certificate_for(session, merchant_id) is not None


def certificate_for_pass_type(session: Session, pass_type_id: str) -> AppleCertificate | None:
    return session.scalar(
        select(AppleCertificate)
        .where(AppleCertificate.pass_type_id == pass_type_id, AppleCertificate.active.is_(True))
        .order_by(AppleCertificate.id.desc())
        .limit(1)
    )


def known_pass_type(session: Session, pass_type_id: str) -> bool:
    return certificate_for_pass_type(session, pass_type_id) is not None


def require_certificate(session: Session, merchant_id: int) -> AppleCertificate:
    row = certificate_for(session, merchant_id)
    if row is None:
        raise DomainError(
            "unavailable", "no Apple pass certificate: run `loyalwallet apple import-cert` (or the demo)"
        )
    return row


# --- signers and push clients, made once per process ----------------------------------------

_signers: dict[tuple[int, str], Signer] = {}
_lock = threading.Lock()


def identity_of(row: AppleCertificate) -> PassIdentity:
    key_pem = crypto.open_(
        row.key_enc, merchant_id=_seal_scope(row.merchant_id), column=f"apple_key:{row.fingerprint}"
    )
    assert key_pem is not None
    return load_identity(row.cert_pem, key_pem, row.chain_pem, row.kind)


def signer_for(row: AppleCertificate) -> Signer:
    key = (row.id, row.fingerprint)
    signer = _signers.get(key)
    if signer is None:
        signer = Signer(identity_of(row))
        with _lock:
            _signers[key] = signer
    return signer


@dataclass(frozen=True)
class PushRoute:
    pusher: apns.Pusher | None  # None: do not send (development certificate, real APNs)
    topic: str
    reason: str = ""


def push_route(session: Session, pass_type_id: str) -> PushRoute | None:
    """How to push for this pass type: token auth with the team's APNs key when there is
    one, else certificate auth with the pass certificate. None: the pass type is unknown."""
    cert = certificate_for_pass_type(session, pass_type_id)
    if cert is None:
        return None
    if cert.kind == "development" and apns.base_url() == apns.APNS_PRODUCTION:
        return PushRoute(None, pass_type_id, "development certificate: Apple would refuse the push")
    key = session.scalar(
        select(ApplePushKey)
        .where(ApplePushKey.team_id == cert.team_id, ApplePushKey.active.is_(True))
        .order_by(ApplePushKey.id.desc())
        .limit(1)
    )
    if key is not None:

        def token() -> dict[str, Any]:
            p8 = crypto.open_(
                key.key_enc, merchant_id=_INSTALLATION, column=f"apns_key:{key.team_id}:{key.key_id}"
            )
            assert p8 is not None
            return {"token_auth": apns.TokenAuth(p8, key.key_id, key.team_id)}

        # One client per key: its provider token stays cached (Apple limits renewals).
        return PushRoute(apns.pusher(f"key:{key.id}", token), pass_type_id)

    def certificate() -> dict[str, Any]:
        identity = identity_of(cert)
        return {"cert": (identity.cert_pem() + identity.chain_pem(), identity.key_pem())}

    return PushRoute(apns.pusher(f"cert:{cert.fingerprint}", certificate), pass_type_id)


# --- what the admin page shows ----------------------------------------------------------------


def is_development(session: Session, merchant_id: int) -> bool | None:
    """True: passes are signed with the development chain (iPhones refuse them);
    False: a real Apple certificate; None: no certificate at all."""
    row = certificate_for(session, merchant_id)
    return None if row is None else row.kind == "development"


def status(session: Session, merchant_id: int | None = None) -> dict[str, Any]:
    """Plain facts and warnings about Apple Wallet for the admin page and `apple status`."""
    row = (
        certificate_for(session, merchant_id)
        if merchant_id is not None
        else installation_certificate(session)
    )
    base = get_settings().base_url
    warnings: list[str] = []
    out: dict[str, Any] = {
        "mode": "none",
        "pass_type_id": None,
        "team_id": None,
        "expires_at": None,
        "scope": None,
        "push": None,
        "web_service_url": f"{base}/wallet/apple",
        "https": base.startswith("https://"),  # iPhones ask an HTTPS web service only
        "days_left": None,
        "expires_soon": False,  # 30 days or less
        "warnings": warnings,
    }
    if row is None:
        warnings.append("No pass certificate: run `loyalwallet apple import-cert --p12 FILE --password ...`.")
        return out
    key = session.scalar(
        select(ApplePushKey)
        .where(ApplePushKey.team_id == row.team_id, ApplePushKey.active.is_(True))
        .limit(1)
    )
    out.update(
        mode=row.kind,
        pass_type_id=row.pass_type_id,
        team_id=row.team_id,
        expires_at=row.not_after.isoformat(),
        scope="merchant" if row.merchant_id is not None else "installation",
        push=f"token ({key.key_id})" if key else "certificate",
        days_left=(row.not_after - utcnow()).days,
        expires_soon=row.not_after - utcnow() < EXPIRY_WARNING,
    )
    if row.kind == "development":
        warnings.append(
            "Development certificate: passes open in tests but real iPhones refuse them. "
            "Import the Apple Pass Type ID certificate: `loyalwallet apple import-cert`."
        )
    if out["expires_soon"]:
        warnings.append(f"The certificate expires on {row.not_after:%Y-%m-%d}: renew it at Apple.")
    if not base.startswith("https://"):
        warnings.append(
            "LOYALWALLET_BASE_URL is not HTTPS: iPhones only talk to an HTTPS web service, "
            "so passes install without live updates until the server is behind HTTPS."
        )
    return out


def reset_caches() -> None:
    with _lock:
        _signers.clear()
    apns.reset()
