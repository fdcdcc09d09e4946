"""The guest's feedback page: /c/{card token}/rate/{purchase id}. Mobile first, no
JavaScript needed (radio buttons drawn as stars by CSS), Russian and English.

GET shows the form (or the thanks with the location's review links after a 5, and the
answer to change while it is editable); POST saves and redirects back (303).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from loyalwallet import db
from loyalwallet.enrollment.webcard import brand, first_name
from loyalwallet.errors import DomainError
from loyalwallet.feedback import rules, service
from loyalwallet.web.requests import client_ip
from loyalwallet.web.templating import language, render

router = APIRouter(include_in_schema=False)

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # the link is a bearer token
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _error(request: Request, error: DomainError, lang: str | None = None) -> Response:
    status = {"not_found": 404}.get(error.code, error.status)
    return _secure(render(request, "feedback/error.html", {"error": error}, status=status, lang=lang))


def _context(visit: service.Visit, now: dt.datetime, session: Any) -> dict[str, Any]:
    settings = service.settings_of(visit.merchant)
    feedback = visit.feedback
    return {
        "brand": brand(visit.program, visit.merchant, visit.card.tier),
        "visit": visit,
        "feedback": feedback,
        "open": visit.is_open(now),
        "problems": rules.PROBLEMS,
        "scores": list(reversed(rules.SCORES)),
        "review_links": visit.review_links(settings) if feedback is not None and feedback.score == 5 else [],
        "card_path": f"/c/{visit.card.public_token}",
        "when": visit.purchase.created_at.astimezone(dt.UTC),
        "location": visit.location.name if visit.location else None,
        "reward_points": settings.reward_points if visit.program.kind == "bonus" else 0,
    }


@router.get("/c/{token}/rate/{purchase_id:int}")
def rate_page(request: Request, token: str, purchase_id: int) -> Response:
    try:
        with db.read() as session:
            visit = service.load_visit(session, token, purchase_id)
            _name, saved = first_name(session, visit.card)
            context = _context(visit, db.utcnow(), session)
    except DomainError as exc:
        return _error(request, exc)
    context["saved"] = request.query_params.get("saved") == "1"
    return _secure(render(request, "feedback/rate.html", context, lang=language(request, saved)))


@router.post("/c/{token}/rate/{purchase_id:int}")
async def rate_submit(request: Request, token: str, purchase_id: int) -> Response:
    form = await request.form()
    comment = form.get("comment")
    fields: dict[str, Any] = {
        "score": form.get("score"),
        "problems": [p for p in form.getlist("problems") if isinstance(p, str)],
        "comment": comment if isinstance(comment, str) else None,
    }
    lang = request.query_params.get("lang")
    try:
        with db.transaction() as session:
            service.answer(session, token, purchase_id, ip=client_ip(request), **fields)
    except DomainError as exc:
        if exc.code != "validation_error":
            return _error(request, exc)
        with db.read() as session:
            try:
                visit = service.load_visit(session, token, purchase_id)
            except DomainError as again:
                return _error(request, again)
            _name, saved = first_name(session, visit.card)
            context = _context(visit, db.utcnow(), session)
        context.update(problem=exc, posted=fields)
        page = render(request, "feedback/rate.html", context, status=422, lang=language(request, saved))
        return _secure(page)
    suffix = f"&lang={lang}" if lang in ("ru", "en") else ""
    return _secure(RedirectResponse(f"/c/{token}/rate/{purchase_id}?saved=1{suffix}", status_code=303))
