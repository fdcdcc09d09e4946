"""Request dependencies: who is calling (API key or staff session) and with what role."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from loyalwallet import db
from loyalwallet.errors import DomainError
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import actor_for_api_key

# Other ways to authenticate (the staff web session) register here: each takes the
# request and returns an Actor or None.
EXTRA_AUTHENTICATORS: list[Callable[[Request], Actor | None]] = []


def authenticate(request: Request) -> Actor:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise DomainError("unauthorized", "use Authorization: Bearer <api key>")
        with db.read() as session:
            actor = actor_for_api_key(session, value.strip())
        if actor is None:
            raise DomainError("unauthorized", "the API key is not valid or was revoked")
        return actor
    for auth in EXTRA_AUTHENTICATORS:
        actor = auth(request)
        if actor is not None:
            return actor
    raise DomainError("unauthorized", "an API key is required: Authorization: Bearer <api key>")


def actor(request: Request) -> Actor:
    """Any authenticated caller (cashier and up)."""
    return authenticate(request)


def manager(request: Request) -> Actor:
    who = authenticate(request)
    who.require("manager")
    return who


def owner(request: Request) -> Actor:
    who = authenticate(request)
    who.require("owner")
    return who
