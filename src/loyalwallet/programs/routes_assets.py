"""Public, cache-forever serving of design images by merchant and SHA-256."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from loyalwallet import db
from loyalwallet.errors import not_found
from loyalwallet.programs.assets import load

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
