"""GET /readyz and GET /metrics (beside /healthz in api/app.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from loyalwallet.api.responses import FastJSON
from loyalwallet.ops import metrics
from loyalwallet.ops.health import readiness

router = APIRouter(tags=["ops"])


@router.get("/readyz", summary="Database reachable and migrations at head (503 otherwise)")
def readyz() -> Response:
    r = readiness()
    body = {"status": r.status, "detail": r.detail, "current": list(r.current), "heads": list(r.heads)}
    if r.pending:
        body["pending"] = list(r.pending)
    return FastJSON(body, status_code=200 if r.ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"}},
)
async def metrics_endpoint() -> Response:
    body = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=metrics.CONTENT_TYPE)
