"""Public, cache-forever serving of design images by merchant and SHA-256."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from loyalwallet import db
from loyalwallet.api.deps import manager
from loyalwallet.api.responses import FastJSON
from loyalwallet.errors import not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.programs.assets import load, store, url

router = APIRouter(tags=["assets"])


@router.get("/assets/{merchant_id}/{sha}", summary="A card design image (public)", include_in_schema=False)
def get_asset(merchant_id: int, sha: str) -> Response:
    if len(sha) != 64:
        raise not_found("image")
    with db.read() as session:
        asset = load(session, merchant_id, sha)
        if asset is None:
            raise not_found("image")
        return Response(
            asset.data,
            media_type=asset.content_type,
            headers={"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{sha}"'},
        )


@router.post(
    "/api/v1/assets",
    status_code=201,
    tags=["programs"],
    summary="Upload a card design image (PNG, JPEG or WebP, ≤ 5 MB; manager+)",
)
async def upload_asset(request: Request, who: Actor = Depends(manager)) -> Response:
    """The raw image is the request body; the answer gives the SHA-256 to put in a
    program's design (images.logo / icon / strip, or a tier's strip)."""
    data = await request.body()
    with db.transaction() as session:
        asset = store(session, who.merchant_id, data)
        body = {
            "sha256": asset.sha256,
            "url": url(who.merchant_id, asset.sha256),
            "width": asset.width,
            "height": asset.height,
        }
    return FastJSON(body, status_code=201)
