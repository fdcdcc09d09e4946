"""HTTP API of the merchant itself: its profile, locations, API keys and staff."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.api.deps import actor as any_actor
from loyalwallet.api.deps import owner
from loyalwallet.api.responses import FastJSON
from loyalwallet.config import get_settings
from loyalwallet.customers.phones import to_e164
from loyalwallet.customers.service import phone_index
from loyalwallet.merchants import service
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import ApiKey, Location, Staff
from loyalwallet.merchants.schemas import ApiKeyIn, LocationIn, StaffIn

router = APIRouter(prefix="/api/v1", tags=["merchant"])


def location_view(loc: Location) -> dict[str, Any]:
    return {
        "id": loc.id,
        "name": loc.name,
        "address": loc.address,
        "phone": loc.phone,
        "latitude": loc.latitude,
        "longitude": loc.longitude,
        "active": loc.active,
    }


def key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "role": key.role,
        "location_id": key.location_id,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
    }


@router.get("/merchant", summary="The merchant this key belongs to")
def me(who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        m = service.get_merchant(session, who.merchant_id)
        return {
            "id": m.id,
            "name": m.name,
            "currency": m.currency,
            "timezone": m.timezone,
            "locale": m.locale,
            "role": who.role,
        }


@router.post("/locations", status_code=201, summary="Add a location (owner)")
def create_location(body: LocationIn, who: Actor = Depends(owner)) -> Response:
    with db.transaction() as session:
        loc = service.create_location(
            session, who, body.name, body.address, body.latitude, body.longitude, body.phone
        )
        return FastJSON(location_view(loc), status_code=201)


@router.get("/locations", summary="Locations")
def list_locations(who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        rows = session.scalars(
            select(Location).where(Location.merchant_id == who.merchant_id).order_by(Location.id)
        )
        return {"items": [location_view(loc) for loc in rows]}


@router.post("/api-keys", status_code=201, summary="Create an API key; the key is shown only here (owner)")
def create_key(body: ApiKeyIn, who: Actor = Depends(owner)) -> Response:
    with db.transaction() as session:
        key, plain = service.create_api_key(
            session, who.merchant_id, body.name, body.role, body.location_id, actor=who
        )
        return FastJSON({**key_view(key), "api_key": plain}, status_code=201)


@router.get("/api-keys", summary="API keys (without the keys)")
def list_keys(who: Actor = Depends(owner)) -> dict[str, Any]:
    with db.read() as session:
        rows = session.scalars(
            select(ApiKey).where(ApiKey.merchant_id == who.merchant_id).order_by(ApiKey.id)
        )
        return {"items": [key_view(k) for k in rows]}


@router.delete("/api-keys/{key_id}", summary="Revoke an API key (owner)")
def revoke_key(key_id: int, who: Actor = Depends(owner)) -> dict[str, Any]:
    with db.transaction() as session:
        return key_view(service.revoke_api_key(session, who, key_id))


@router.post("/staff", status_code=201, summary="Add a staff member (owner)")
def create_staff(body: StaffIn, who: Actor = Depends(owner)) -> Response:
    with db.transaction() as session:
        index = None
        if body.phone:
            index = phone_index(who.merchant_id, to_e164(body.phone, get_settings().default_region))
        staff = service.create_staff(
            session,
            who.merchant_id,
            body.login,
            body.password,
            body.role,
            body.name,
            body.location_ids,
            phone_index=index,
            actor=who,
        )
        return FastJSON(
            {
                "id": staff.id,
                "login": staff.login,
                "name": staff.name,
                "role": staff.role,
                "location_ids": body.location_ids,
            },
            status_code=201,
        )


@router.get("/staff", summary="Staff members (owner)")
def list_staff(who: Actor = Depends(owner)) -> dict[str, Any]:
    with db.read() as session:
        rows = session.scalars(select(Staff).where(Staff.merchant_id == who.merchant_id).order_by(Staff.id))
        return {
            "items": [
                {"id": s.id, "login": s.login, "name": s.name, "role": s.role, "active": s.active}
                for s in rows
            ]
        }
