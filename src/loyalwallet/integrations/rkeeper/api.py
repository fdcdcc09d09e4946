"""The processing server FarCards' HTTP module calls:

    POST /integrations/rkeeper/{merchant_id}/{secret}/getcardinfoex
    POST /integrations/rkeeper/{merchant_id}/{secret}/transactionsex

The dealer writes `https://<host>/integrations/rkeeper/{merchant_id}/{secret}` as Address
in ExtDllHttp.ini and `getcardinfoex` / `transactionsex` as the two functions' paths.
Every answer is XML in FarCards' shape, errors included (Result="1" with our ErrorCode):
never problem+json, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.errors import DomainError
from loyalwallet.integrations.rkeeper import rules, service
from loyalwallet.integrations.rkeeper.models import RkeeperConnection

router = APIRouter(tags=["rkeeper"])
log = logging.getLogger("loyalwallet.rkeeper")
XML = "application/xml; charset=utf-8"
# HTTP statuses of the errors that are about the request itself; a refusal about the
# card or the check (unknown card, not enough points) is a normal answer, HTTP 200.
STATUS = {"unauthorized": 401, "malformed_xml": 400, "validation_error": 400, "too_large": 413}


async def _body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > rules.MAX_BODY:
            raise rules.ProtocolError("too_large", f"the body is larger than {rules.MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(function: str, merchant_ref: str, secret: str, body: bytes) -> Response:
    """Authenticate, parse, act, all in one transaction; any failure rolls back and is
    answered in FarCards' format. The connection's last call/error is recorded apart."""
    handler: Callable[..., bytes] = _card_info if function == "GetCardInfoEx" else _transactions
    error: rules.ProtocolError | None = None
    try:
        with db.transaction() as session:
            conn = service.authenticate(session, merchant_ref, secret)
            payload = handler(session, conn, body)
            service.touch(session, conn, None)
        return Response(payload, media_type=XML)
    except rules.ProtocolError as exc:
        error = exc
    except DomainError as exc:  # checkout's refusals: insufficient points, blocked card...
        error = rules.ProtocolError(exc.code, exc.detail)
    except IntegrityError:  # the same check booked concurrently: the retry will see it
        error = rules.ProtocolError("conflict", "this check is being booked right now; send it again")
    if error.code != "unauthorized":
        log.info("r_keeper %s refused for merchant %s: %s", function, merchant_ref, error.code)
        with db.transaction() as session:
            known = service.connection(session, int(merchant_ref))
            if known is not None:
                service.touch(session, known, f"{function}: {error.message}")
    return Response(
        rules.error_answer(function, error.code, error.message),
        status_code=STATUS.get(error.code, 200),
        media_type=XML,
    )


def _card_info(session: Session, conn: RkeeperConnection, body: bytes) -> bytes:
    query = rules.parse_card_query(body)
    return rules.card_answer(service.card_info(session, conn, query))


def _transactions(session: Session, conn: RkeeperConnection, body: bytes) -> bytes:
    batch = rules.parse_transactions(body)
    service.book(session, conn, batch)
    return rules.transactions_answer()


async def _serve(function: str, merchant_id: str, secret: str, request: Request) -> Response:
    try:
        body = await _body(request)
    except rules.ProtocolError as exc:
        return Response(rules.error_answer(function, exc.code, exc.message), status_code=413, media_type=XML)
    return await run_in_threadpool(_answer, function, merchant_id, secret, body)


@router.post("/integrations/rkeeper/{merchant_id}/{secret}/getcardinfoex", include_in_schema=False)
async def get_card_info(merchant_id: str, secret: str, request: Request) -> Response:
    return await _serve("GetCardInfoEx", merchant_id, secret, request)


@router.post("/integrations/rkeeper/{merchant_id}/{secret}/transactionsex", include_in_schema=False)
async def transactions(merchant_id: str, secret: str, request: Request) -> Response:
    return await _serve("TransactionsEx", merchant_id, secret, request)
