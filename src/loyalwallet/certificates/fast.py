"""The certificate spend's fast path on PostgreSQL: two round trips, no ORM session.

POST /api/v1/certificates/{code}/redemptions is answered here when it can be; anything
else goes, untouched, to the general path (certificates.api.redeem -> service.redeem),
which stays the reference for every rule and every error. The fast path is

    1. read the certificate and its row version, the merchant's fraud rules and time
       zone, what was spent from it today, the answer stored under the key (a replay is
       answered from here) and the spend entry's id: one statement, no lock
    -- the pure rules in Python, the same functions as the general path:
       certificates.rules.check_usable / pay, fraud.rules.check_certificate_spend,
       certificates.service.view / _event_data --
    2. one atomic statement: claim the key with the answer, set the balance if the row
       is still the version read, and then write the spend entry and the
       certificate.spent outbox row (webhooks, the Apple and Google passes follow from it
       in the worker); if the row changed or the key was claimed meanwhile, nothing
       stays written and the general path answers (certificates/fast_sql.py)

on asyncpg (the purchase fast path's pool, checkout.fast_sql.pool) behind a plain
Starlette route. The row-version check replaces the lock the general path takes: the
balance can never go below zero (the update is conditional on the balance the rules
saw), and under contention on one certificate the losers take the general path, which
locks.

Falls back to the general path (nothing written), and why:
- any error: an unknown or another merchant's certificate, one expired or cancelled,
  more than its balance, an idempotency conflict or an expired key, a bad body or a
  bad key: the general path writes the problem+json, and errors are not the hot path;
- a fraud rule that fires (the general path writes the alert, or blocks), fraud settings
  that do not parse, a local midnight that Python and PostgreSQL disagree on (a DST
  edge);
- a location in the body (the general path checks it), a caller that is not an API key
  in this process's cache (a staff session, a key's first use);
- another write to the certificate, or the same key, between statements 1 and 2;
- SQLite, or LOYALWALLET_FAST_CERTIFICATES=0 (by default it follows
  LOYALWALLET_FAST_CHECKOUT).
`FELL_BACK` counts fallbacks by the place that sent them.
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import lru_cache
from typing import Any

import orjson
from asyncpg import DivisionByZeroError
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from loyalwallet.api.hot import read_body, receive_once
from loyalwallet.certificates import fast_sql as q
from loyalwallet.certificates import rules
from loyalwallet.certificates.models import GiftCertificate
from loyalwallet.certificates.schemas import RedemptionIn
from loyalwallet.certificates.service import _event_data, view
from loyalwallet.checkout import idempotency
from loyalwallet.checkout.fast_input import actor_of, fraud_rules_of, parse_body
from loyalwallet.checkout.fast_sql import parse_time, pool
from loyalwallet.checkout.fast_write import Fallback
from loyalwallet.config import get_settings
from loyalwallet.errors import DomainError
from loyalwallet.fraud import rules as fr
from loyalwallet.fraud.service import _local_midnight
from loyalwallet.merchants.actors import Actor
from loyalwallet.outbox.service import current_lane, wakeup

log = logging.getLogger("loyalwallet.certificates")
PATH = "/api/v1/certificates/{code}/redemptions"
# Switched off by tests to run the general path on the same server (the hypothesis
# test compares both), or by LOYALWALLET_FAST_CERTIFICATES=0.
ENABLED = True
# How many spends each path answered in this process (tests check the fast one ran).
SERVED = {"fast": 0, "general": 0, "replay": 0}
# Why spends fell back, by the place that sent them ("fast.py:123"): what to cover next.
FELL_BACK: dict[str, int] = {}
_BODY_KEYS = frozenset(RedemptionIn.model_fields)


def enabled() -> bool:
    return ENABLED and not get_settings().is_sqlite and _env_on()


def _env_on() -> bool:
    from loyalwallet.config import env

    default = env("FAST_CHECKOUT", "1") or "1"
    return (env("FAST_CERTIFICATES", default) or default) != "0"


async def redeem(request: Request, raw: bytes) -> Response:
    """The fast spend, or Fallback before anything is committed."""
    actor = actor_of(request)
    body = parse_body(raw, RedemptionIn, _BODY_KEYS)
    if body.location_id is not None:
        raise Fallback  # service._location checks it against the key and the merchant
    code = rules.normalise_code(str(request.path_params.get("code", "")))
    if not rules.looks_like_code(code):
        raise Fallback  # the general path says 404
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= idempotency.MAX_KEY_LENGTH:
        raise Fallback
    now = dt.datetime.now(dt.UTC)
    conns = await pool()
    async with conns.acquire() as conn:
        done = await _run(conn, actor, code, body, key, now)
        if isinstance(done, Response):  # a replay: nothing was written
            return done
        response, args = done
        try:
            await conn.fetchval(q.WRITE[key is not None], *args)
        except DivisionByZeroError:
            raise Fallback from None  # the row changed or the key was claimed: nothing written
    wakeup.set()
    return Response(orjson.dumps(response), status_code=201, media_type="application/json")


def _scope(code: str) -> str:
    return f"certificate.redeem:{code}"  # service.redeem's


async def _run(
    conn: Any, actor: Actor, code: str, body: RedemptionIn, key: str | None, now: dt.datetime
) -> tuple[dict[str, Any], list[Any]] | Response:
    args: list[Any] = [actor.merchant_id, code, now]
    body_hash = idempotency.request_hash(body.model_dump())
    if key is not None:
        args += [_scope(code), key]
    row = await conn.fetchrow(q.READ[key is not None], *args)
    if row is None:
        raise Fallback  # not this merchant's certificate: the general path says 404
    if key is not None and row["stored"] is not None:
        return _replay(row["stored"], body_hash, now)
    cert = GiftCertificate(**{c: row[c] for c in q.CERT_COLUMNS})
    try:
        rules.check_usable(cert.status, cert.expires_at, now)
        paid = rules.pay(cert.balance, body.amount, body.amount)
    except DomainError:
        raise Fallback from None  # the general path says why
    _check_fraud(row, cert, paid, now)
    if cert.balance - paid < 0:
        raise Fallback  # ledger.move's guard (rules.pay already refused it)
    entry_id = int(row["entry_id"])
    cert.balance -= paid
    cert.updated_at = now
    event = {
        "name": "certificate.spent",
        "data": _event_data(cert, amount=paid, spend_id=entry_id),
        "at": now.isoformat(),
    }
    response = {
        "id": entry_id,
        "amount": paid,
        "refundable": paid,
        "certificate": view(cert, with_contacts=False, now=now),
    }
    write = [
        entry_id,
        actor.merchant_id,
        cert.id,
        -paid,
        actor.location_id,
        body.external_id,
        actor.kind,
        actor.id,
        now,
        cert.balance,
        row["row_version"],
        event,
        current_lane.get(),
    ]
    if key is not None:
        stored = idempotency.without_guest(response)
        write += [stored, _scope(code), key, body_hash, now + idempotency.ttl()]
    return response, write


def _check_fraud(row: Any, cert: GiftCertificate, paid: int, now: dt.datetime) -> None:
    """fraud.certificates.check_certificate_spend on what statement 1 read; a hit (the
    general path writes the alert, or blocks) falls back."""
    fraud_rules = fraud_rules_of(row["fraud"])
    if not fr.needs(fraud_rules, "max_certificate_spend_per_day"):
        return
    midnight = _local_midnight(str(row["tz"]), now)
    if row["midnight"] is None or midnight != row["midnight"]:
        raise Fallback
    facts = fr.CertificateSpendFacts(
        amount=paid, spent_today=int(row["spent_today"] or 0), currency=cert.currency
    )
    if fr.check_certificate_spend(fraud_rules, facts):
        raise Fallback


def _replay(stored: Any, body_hash: str, now: dt.datetime) -> Response:
    """The answer stored under the key (idempotency.claim's replay), from statement 1."""
    stored_hash, status, response, expires_at = stored
    expires = parse_time(expires_at)
    if (expires is not None and expires <= now) or stored_hash != body_hash:
        raise Fallback  # expired (claimed again) or another body (409): the general path
    if not isinstance(response, dict) or status is None:
        raise Fallback
    SERVED["replay"] += 1
    return Response(
        orjson.dumps(response, option=orjson.OPT_NON_STR_KEYS),
        status_code=int(status),
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


# --- mounting -----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _general_route() -> Any:
    """The general path's route (certificates.api.redeem)."""
    from loyalwallet.certificates import api

    for route in api.router.routes:
        if getattr(route, "path", None) == PATH and "POST" in (getattr(route, "methods", None) or ()):
            return route
    raise LookupError(f"no general route for {PATH}")


def _note_fallback(e: Fallback) -> None:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        place = f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        FELL_BACK[place] = FELL_BACK.get(place, 0) + 1


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI endpoint in front of the general route."""
    raw = await read_body(receive)
    if raw is None:
        return
    scope["route"] = _general_route()  # the metrics' route label (ops.metrics), either path
    if enabled():
        try:
            response = await redeem(Request(scope), raw)
        except Fallback as e:
            _note_fallback(e)
        except Exception:  # never worse than the general path: it answers instead
            log.exception("certificate fast path failed; the general path answers")
        else:
            if "idempotent-replayed" not in response.headers:
                SERVED["fast"] += 1
            await response(scope, receive, send)
            return
    SERVED["general"] += 1
    await _general_route().handle(scope, receive_once(raw), send)


class _Endpoint:
    """An ASGI app (Starlette's Route calls a plain function with a request instead)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await endpoint(scope, receive, send)


# Listed in wiring.routers before the certificates' router, so this route comes first.
router = APIRouter()
router.routes.append(Route(PATH, _Endpoint(), methods=["POST"], include_in_schema=False))
