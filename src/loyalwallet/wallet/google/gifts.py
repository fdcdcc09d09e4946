"""Gift certificates in Google Wallet: a giftCardClass per merchant and a giftCardObject
per certificate (Google's published REST description: walletobjects v1 giftcardclass /
giftcardobject), kept in step through the outbox.

- certificate.* events (EVENT_LISTENERS: `on_certificate_event`) queue `google.gift`
  {"certificate_id"} for a merchant with a Google issuer;
- `google.gift` (`google_gift`): upsert the merchant's class, then the object (patch;
  insert when Google does not have it) — the balance as Money (micros), the balance's
  update time, the validity interval, the state;
- the save link `/g/{token}/google` (public.py) carries the full object in a signed JWT
  (`giftCardObjects`), so it works even before the REST insert reached Google.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.certificates import rules as gift_rules
from loyalwallet.certificates.models import GiftCertificate
from loyalwallet.config import get_settings
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import get_merchant
from loyalwallet.outbox.handlers import Delivery
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs.design import parse_design
from loyalwallet.programs.models import Program
from loyalwallet.wallet.google import caches, objects, savelink
from loyalwallet.wallet.google.client import WalletClient
from loyalwallet.wallet.google.issuer import Issuer, id_prefix, issuer_for, merchant_gettext, program_facts
from loyalwallet.wallet.google.objects import BARCODES, _image
from loyalwallet.wallet.google.sync import _class_seen, _logo_url

CLASS_KIND = "giftCardClass"
OBJECT_KIND = "giftCardObject"
TOPIC = "google.gift"
EVENTS = (
    "certificate.sold",
    "certificate.spent",
    "certificate.refunded",
    "certificate.expired",
    "certificate.voided",
)
# Optional object fields we manage: a patch clears them when absent.
OBJECT_OPTIONAL = ("validTimeInterval", "textModulesData")


def class_id(issuer_id: str, merchant_id: int) -> str:
    return f"{issuer_id}.{id_prefix()}-gift-m{merchant_id}"


def object_id(issuer_id: str, cert: GiftCertificate) -> str:
    # The public token, not the code: the id is no bearer secret (it travels in URLs).
    return f"{issuer_id}.{id_prefix()}-gift-{cert.public_token}"


def _money(minor: int, currency: str) -> dict[str, Any]:
    """Google's Money: micros as an int64 string (1 ₽ = 100 kopecks = 1,000,000 micros)."""
    return {"micros": str(minor * 10_000), "currencyCode": currency}


def _date(value: dt.datetime) -> dict[str, str]:
    """Google's DateTime: ISO 8601 with the offset."""
    return {"date": value.astimezone(dt.UTC).isoformat(timespec="seconds")}


def gift_class(cid: str, merchant: Merchant, logo_url: str | None, _: Any) -> dict[str, Any]:
    """The merchant's giftCardClass."""
    lang = merchant.locale or "ru"
    body: dict[str, Any] = {
        "id": cid,
        "issuerName": merchant.name,
        "merchantName": merchant.name,
        "reviewStatus": "UNDER_REVIEW",  # Google approves issuer classes at once
        "cardNumberLabel": _("Certificate code"),
        "allowBarcodeRedemption": True,
    }
    if logo_url:
        body["programLogo"] = _image(logo_url, merchant.name, lang)
    return body


def gift_object(
    oid: str, cid: str, cert: GiftCertificate, barcode: str, now: dt.datetime, _: Any
) -> dict[str, Any]:
    """A certificate's giftCardObject: its code (the till scans the barcode), the balance,
    when it last changed, until when it is valid, and its state."""
    expired = cert.status == "expired" or (cert.expires_at is not None and cert.expires_at <= now)
    state = "ACTIVE" if cert.status == "active" and not expired else ("EXPIRED" if expired else "INACTIVE")
    body: dict[str, Any] = {
        "id": oid,
        "classId": cid,
        "state": state,
        "cardNumber": gift_rules.grouped(cert.code),
        "balance": _money(cert.balance if state == "ACTIVE" else 0, cert.currency),
        "balanceUpdateTime": _date(cert.updated_at),
        "barcode": {"type": BARCODES.get(barcode, "QR_CODE"), "value": cert.code, "alternateText": cert.code},
        "linksModuleData": {
            "uris": [
                {
                    "id": "certificate",
                    "uri": f"{get_settings().base_url}/g/{cert.public_token}",
                    "description": _("Your certificate online"),
                }
            ]
        },
    }
    if cert.expires_at is not None:
        body["validTimeInterval"] = {"end": _date(cert.expires_at)}
    if cert.message:
        body["textModulesData"] = [{"id": "message", "header": _("Gift"), "body": cert.message[:500]}]
    return body


def _look(session: Session, merchant_id: int) -> tuple[Program | None, str]:
    program = session.scalar(
        select(Program).where(Program.merchant_id == merchant_id).order_by(Program.id).limit(1)
    )
    return program, parse_design(program.design if program else None).barcode


def bodies(session: Session, issuer: Issuer, cert: GiftCertificate) -> tuple[dict[str, Any], dict[str, Any]]:
    """(class, object) of a certificate, as Google gets them."""
    merchant = get_merchant(session, cert.merchant_id)
    _ = merchant_gettext(merchant)
    program, barcode = _look(session, cert.merchant_id)
    logo = _logo_url(session, program, program_facts(session, program, merchant)) if program else None
    cid = class_id(issuer.issuer_id, cert.merchant_id)
    cls = gift_class(cid, merchant, logo, _)
    obj = gift_object(object_id(issuer.issuer_id, cert), cid, cert, barcode, db.utcnow(), _)
    return cls, obj


def on_certificate_event(msg: Delivery) -> None:
    """EVENT_LISTENERS entry: a certificate sold or changed → `google.gift` for it, when
    the merchant has a Google issuer that talks to Google."""
    data = msg.payload.get("data") or {}
    if (
        msg.merchant_id is None
        or msg.payload.get("name") not in EVENTS
        or not isinstance(data.get("id"), int)
    ):
        return
    with db.read() as session:
        issuer = issuer_for(session, msg.merchant_id)
    if issuer is None or not issuer.syncs:
        return
    with db.transaction() as session:
        enqueue(session, msg.merchant_id, TOPIC, {"certificate_id": data["id"]})


def sync_gift(certificate_id: int) -> None:
    """Upsert the merchant's gift class and the certificate's object at Google."""
    with db.read() as session:
        cert = session.get(GiftCertificate, certificate_id)
        if cert is None:
            return
        issuer = issuer_for(session, cert.merchant_id)
        if issuer is None or not issuer.syncs:
            return
        cls, obj = bodies(session, issuer, cert)
    client = WalletClient(issuer.creds)
    digest = objects.content_hash(cls)
    seen = caches.classes_seen.get(cls["id"])
    if seen is None or seen[0] != digest or seen[1] <= time.monotonic():  # else at Google a moment ago
        client.upsert(CLASS_KIND, cls, {k: v for k, v in cls.items() if k != "id"}, exists=seen is not None)
        _class_seen(cls["id"], digest)
    patch = {k: v for k, v in obj.items() if k != "id"}
    for name in OBJECT_OPTIONAL:
        patch.setdefault(name, None)
    client.upsert(OBJECT_KIND, obj, patch, exists=True)


def save_link(session: Session, cert: GiftCertificate, issuer: Issuer) -> str:
    """The "Add to Google Wallet" link of a certificate: a JWT with the full object."""
    _cls, obj = bodies(session, issuer, cert)
    token = savelink.sign(
        email=issuer.creds.email,
        key_id=issuer.key_id,
        private_key=issuer.creds.private_key,
        base_url=get_settings().base_url,
        objects=[obj],
        kind="giftCardObjects",
    )
    return savelink.save_base() + token
