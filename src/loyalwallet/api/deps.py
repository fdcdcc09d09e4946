"""Request dependencies: who is calling (API key or staff session) and with what role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Header, Request
from starlette.concurrency import run_in_threadpool

from loyalwallet import db
from loyalwallet.errors import DomainError
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import KEY_ACTOR, actor_for_api_key, cached_api_key_actor

# Other ways to authenticate than an API key (the staff web session), put here by
# wiring.install(): each takes the request and returns an Actor or None.
EXTRA_AUTHENTICATORS: list[Callable[[Request], Actor | None]] = []

# The Idempotency-Key header of the API's writes (purchases, refunds, certificates,
# subscriptions): `idempotency_key: str | None = IdemKey`.
IdemKey = Header(
    None,
    alias="Idempotency-Key",
    description="Retries with the same key return the stored answer; a different body gives 409.",
)


def _lookup_key(plain: str) -> Actor | None:
    # A write transaction: the lookup stamps the key's last use, and on SQLite a read
    # transaction upgraded to a write fails at once ("database is locked") when a burst of
    # first requests all miss the cache; BEGIN IMMEDIATE waits its turn instead.
    with db.transaction() as session:
        return actor_for_api_key(session, plain)


def _extra(request: Request) -> Actor | None:
    for auth in EXTRA_AUTHENTICATORS:
        actor = auth(request)
        if actor is not None:
            return actor
    return None


async def authenticate(request: Request) -> Actor:
    """Async so that a POS's key, resolved from the cache, costs no thread hop."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        plain = value.strip()
        if scheme.lower() != "bearer" or not plain:
            raise DomainError("unauthorized", "use Authorization: Bearer <api key>")
        hit, actor = cached_api_key_actor(plain)
        if not hit:
            actor = await run_in_threadpool(_lookup_key, plain)
        if actor is None:
            raise DomainError("unauthorized", "the API key is not valid or was revoked")
        return actor
    if EXTRA_AUTHENTICATORS:
        actor = await run_in_threadpool(_extra, request)
        if actor is not None:
            return actor
    raise DomainError("unauthorized", "an API key is required: Authorization: Bearer <api key>")


_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# The staff session cookie's name (web.sessions.COOKIE), put here by the app's assembly.
SESSION_COOKIES: list[str] = []


async def check_before_body(scope: dict[str, Any]) -> DomainError | None:
    """Run by api/guard.py before a request body is read: an API write with a wrong key,
    or with no credentials at all, is refused without reading (or buffering) its body.
    Every write under /api/ needs a caller; the staff cookie is checked fully later."""
    if scope.get("method") not in _BODY_METHODS or not str(scope.get("path", "")).startswith("/api/"):
        return None
    auth = cookie = b""
    for name, value in scope.get("headers", ()):  # the last of each, as a dict of them kept
        if name == b"authorization":
            auth = value
        elif name == b"cookie":
            cookie = value
    header = auth.decode("latin-1")
    if not header:
        cookies = cookie.decode("latin-1")
        if any(f"{name}=" in cookies for name in SESSION_COOKIES):
            return None
        return DomainError("unauthorized", "an API key is required: Authorization: Bearer <api key>")
    scheme, _, value = header.partition(" ")
    plain = value.strip()
    if scheme.lower() != "bearer" or not plain:
        return DomainError("unauthorized", "use Authorization: Bearer <api key>")
    hit, found = cached_api_key_actor(plain)
    if not hit:
        found = await run_in_threadpool(_lookup_key, plain)
    if found is None:
        return DomainError("unauthorized", "the API key is not valid or was revoked")
    if hit:  # the fast paths take it from here (the key hashed and looked up once)
        scope.setdefault("state", {})[KEY_ACTOR] = found
    return None


async def actor(request: Request) -> Actor:
    """Any authenticated caller (cashier and up)."""
    return await authenticate(request)


async def manager(request: Request) -> Actor:
    who = await authenticate(request)
    who.require("manager")
    return who


async def owner(request: Request) -> Actor:
    who = await authenticate(request)
    who.require("owner")
    return who
