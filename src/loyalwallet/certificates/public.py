"""Guest pages of a gift certificate: its web card (balance, expiry, QR of the code) and
a printable PDF. The URL carries the certificate's unguessable public token; the code in
the QR is what the till scans."""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from PIL import Image, ImageDraw
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.certificates import rules, service
from loyalwallet.certificates.models import GiftCertificate
from loyalwallet.enrollment.printing import A6_MM, DPI, font, mm, qr_image, qr_svg
from loyalwallet.enrollment.rules import platform
from loyalwallet.enrollment.webcard import WALLET_READY
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import get_merchant
from loyalwallet.text import gettext_for, money
from loyalwallet.web.templating import language, render

router = APIRouter(include_in_schema=False)

CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # a bearer link
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _load(token: str) -> tuple[GiftCertificate, Merchant] | None:
    found = _load_with_wallets(token)
    return None if found is None else (found[0], found[1])


def _load_with_wallets(token: str) -> tuple[GiftCertificate, Merchant, dict[str, str]] | None:
    if not token or len(token) > 64:
        return None
    with db.read() as session:
        cert = service.by_token(session, token)
        if cert is None:
            return None
        return cert, get_merchant(session, cert.merchant_id), wallet_paths(session, cert)


def wallet_paths(session: Session, cert: GiftCertificate) -> dict[str, str]:
    """The certificate's wallet links, each only when that wallet works for the merchant
    (as the card pages do): nothing for a certificate that can no longer be spent."""
    if cert.status != "active":
        return {}
    paths = {
        "apple": f"/g/{cert.public_token}/pass.pkpass",
        "google": f"/g/{cert.public_token}/google",
    }
    return {
        name: path
        for name, path in paths.items()
        if name in WALLET_READY and WALLET_READY[name](session, cert.merchant_id)
    }


def _local_date(value: dt.datetime | None, merchant: Merchant) -> str:
    if value is None:
        return ""
    # Valid through the moment it ends: show the last day on which it can still be spent.
    return (
        (value - dt.timedelta(seconds=1))
        .astimezone(zoneinfo.ZoneInfo(merchant.timezone))
        .strftime("%d.%m.%Y")
    )


def page_context(cert: GiftCertificate, merchant: Merchant) -> dict[str, Any]:
    v = service.view(cert, with_contacts=False)
    return {
        "cert": v,
        "merchant_name": merchant.name,
        "balance": money(v["balance"], cert.currency, trim_zero_cents=True),
        "initial": money(cert.initial_amount, cert.currency, trim_zero_cents=True),
        "valid_until": _local_date(cert.expires_at, merchant),
        "qr": qr_svg(cert.code, scale=5, inline=True),
    }


@router.get("/g/{token}")
def certificate_page(request: Request, token: str) -> Response:
    found_wallets = _load_with_wallets(token)
    if found_wallets is None:
        return _secure(render(request, "certificates/missing.html", {}, status=404))
    cert, merchant, wallet = found_wallets
    context = page_context(cert, merchant)
    context["wallet"] = wallet
    context["platform"] = platform(request.headers.get("user-agent"))
    return _secure(render(request, "certificates/card.html", context))


@router.get("/g/{token}/print.pdf")
def certificate_pdf(request: Request, token: str) -> Response:
    found = _load(token)
    if found is None:
        return _secure(Response("not found", status_code=404, media_type="text/plain"))
    cert, merchant = found
    pdf = printable(cert, merchant, language(request))
    return _secure(
        Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="gift-{cert.code[-4:]}.pdf"'},
        )
    )


def printable(cert: GiftCertificate, merchant: Merchant, lang: str) -> bytes:
    """An A6 portrait PDF: the café's name, "Gift certificate", the amount, the message,
    the QR of the code and the code in print, valid until."""
    _ = gettext_for(lang)
    w, h = mm(A6_MM[0]), mm(A6_MM[1])
    page = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(page)
    dark, grey, band = (31, 26, 23), (90, 82, 76), (111, 78, 55)
    draw.rectangle((0, 0, w, mm(30)), fill=band)

    def centred(y: int, text: str, size: float, weight: int, fill: tuple[int, int, int]) -> int:
        f = font(mm(size), weight)
        tw = draw.textlength(text, font=f)
        draw.text(((w - tw) / 2, y), text, font=f, fill=fill)
        return y + int(f.size * 1.3)

    y = centred(mm(7), merchant.name[:40], 6, 700, (255, 255, 255))
    centred(y, _("Gift certificate"), 4.5, 500, (255, 255, 255))
    y = mm(36)
    y = centred(y, money(cert.initial_amount, cert.currency, trim_zero_cents=True), 10, 800, dark)
    if cert.message:
        y = centred(y, cert.message[:60], 3.8, 400, grey)
    qr = qr_image(cert.code, mm(52))
    page.paste(qr, ((w - qr.width) // 2, y + mm(2)))
    y += qr.height + mm(3)
    y = centred(y, rules.grouped(cert.code), 4.6, 700, dark)
    if cert.expires_at is not None:
        centred(
            y, _("Valid until %(date)s") % {"date": _local_date(cert.expires_at, merchant)}, 3.6, 400, grey
        )
    out = io.BytesIO()
    page.save(out, format="PDF", resolution=DPI, title=_("Gift certificate"))
    return out.getvalue()
