"""The owner's Wallets page (/admin/wallets): upload the Apple pass certificate (.p12 or
certificate + key), the APNs key (.p8) and the Google service-account key with the
issuer id, see what is in use, and send a test update to a card.

Every upload goes through the same services as the command line (`apple import-cert`,
`apple import-push-key`, `google import-key`): checked first, stored sealed, nothing
written when a file is wrong. The merchant's own certificate and issuer (scope: this
merchant), as `--merchant` does on the command line.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.errors import DomainError, Explained, translated
from loyalwallet.text import gettext_for
from loyalwallet.wallet.apple import checks as apple_checks
from loyalwallet.wallet.apple import credentials
from loyalwallet.wallet.google import checks as google_checks
from loyalwallet.wallet.google import issuer as google_issuer
from loyalwallet.wallet.google import service as google_service
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
owner = staff_page("owner")

# Certificates, keys and key files are a few kilobytes; the request as a whole is also
# capped (LOYALWALLET_MAX_UPLOAD_BYTES, api/inputs.py).
MAX_FILE_BYTES = 64 * 1024


def _page(
    request: Request,
    who: StaffSession,
    *,
    error: str | None = None,
    form: str | None = None,
    values: dict[str, str] | None = None,
    test: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    with db.read() as session:
        apple = credentials.status(session, who.merchant_id)
        google = google_service.status(session, who.merchant_id)
    ctx = {
        "apple": apple,
        "google": google,
        "issuer": google["issuers"][0] if google["issuers"] else None,
        "error": error,
        "error_form": form,
        "values": values or {},
        "test": test,
        "max_kb": MAX_FILE_BYTES // 1024,
    }
    return render_staff(request, who, "wallet/wallets.html", ctx, section="wallets", status=status)


@router.get("/admin/wallets")
def wallets_page(request: Request, who: StaffSession = Depends(owner)) -> Response:
    return _page(request, who)


async def _file(form: FormData, name: str) -> bytes | None:
    """The uploaded file's bytes; None when the field was left empty."""
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        return None
    data = await upload.read(MAX_FILE_BYTES + 1)
    if not data and not upload.filename:
        return None
    if len(data) > MAX_FILE_BYTES:
        raise Explained(
            "validation_error",
            "the file {name} is larger than {kb} KB: it is not a certificate or key file",
            name=upload.filename or name,
            kb=MAX_FILE_BYTES // 1024,
        )
    return data


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _failed(
    request: Request, who: StaffSession, exc: DomainError, form: str, values: dict[str, str]
) -> Response:
    _ = gettext_for(staff_language(request, who))
    return _page(request, who, error=translated(exc, _), form=form, values=values, status=exc.status)


@router.post("/admin/wallets/apple")
async def apple_certificate(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    try:
        p12, cert, key = await _file(form, "p12"), await _file(form, "cert"), await _file(form, "key")
        wwdr = await _file(form, "wwdr")
        if p12 is None and (cert is None or key is None):
            raise Explained(
                "certificate_invalid",
                "choose the .p12 file, or the certificate and its private key (PEM)",
            )
        with db.transaction() as session:
            row = credentials.import_certificate(
                session,
                p12=p12,
                password=str(form.get("password") or "") or None,
                cert=None if p12 is not None else cert,
                key=None if p12 is not None else key,
                key_password=str(form.get("key_password") or "") or None,
                wwdr=wwdr,
                merchant_id=who.merchant_id,
            )
            summary = {"pass_type_id": row.pass_type_id, "team_id": row.team_id}
    except DomainError as exc:
        return _failed(request, who, exc, "apple", {})
    credentials.reset_caches()
    _ = gettext_for(staff_language(request, who))
    return redirect(
        "/admin/wallets",
        _("Apple certificate saved: pass type {pass_type_id}, team {team_id}.").format(**summary),
    )


@router.post("/admin/wallets/apple/push-key")
async def apple_push_key(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    values = {"key_id": _text(form, "key_id"), "team_id": _text(form, "team_id")}
    try:
        p8 = await _file(form, "p8")
        if p8 is None:
            raise Explained("certificate_invalid", "choose the .p8 file (AuthKey_XXXXXXXXXX.p8)")
        with db.transaction() as session:
            cert = credentials.certificate_for(session, who.merchant_id)
            if cert is not None and cert.kind != "development" and cert.team_id != values["team_id"]:
                raise Explained(
                    "certificate_invalid",
                    "the team id must be the team of your pass certificate ({team_id})",
                    team_id=cert.team_id,
                )
            credentials.store_push_key(session, p8, values["key_id"], values["team_id"])
    except DomainError as exc:
        return _failed(request, who, exc, "push", values)
    credentials.reset_caches()
    return redirect("/admin/wallets", "APNs key saved: pushes use it from now on.")


@router.post("/admin/wallets/google")
async def google_key(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    values = {"issuer_id": _text(form, "issuer_id")}
    try:
        data = await _file(form, "key_file")
        if data is None:
            raise Explained("validation_error", "choose the service-account key file (JSON)")
        with db.transaction() as session:
            google_issuer.import_key(session, data, values["issuer_id"], who.merchant_id)
    except DomainError as exc:
        return _failed(request, who, exc, "google", values)
    return redirect("/admin/wallets", "Google Wallet key saved: the card designs are being sent to Google.")


@router.post("/admin/wallets/test")
async def test_update(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    code = _text(form, "card")
    values = {"card": code}
    if not code:
        exc: DomainError = Explained("validation_error", "enter the code of your card (under its barcode)")
        return _failed(request, who, exc, "test", values)
    try:
        result = {
            "apple": apple_checks.test_update(who.merchant_id, code),
            "google": google_checks.test_update(who.merchant_id, code),
        }
    except DomainError as exc:
        if exc.code == "not_found":
            exc = Explained("not_found", "no card with the code {card}", card=code)
        return _failed(request, who, exc, "test", values)
    return _page(request, who, values=values, test=result)
