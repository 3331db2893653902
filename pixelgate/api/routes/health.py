"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pixelgate.api.deps import RuntimeDep
from pixelgate.api.protocol import HealthStatus

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthStatus)
def healthz() -> HealthStatus:
    """The process answers."""
    return HealthStatus(status="ok")


@router.get("/readyz", response_model=HealthStatus, responses={503: {"model": HealthStatus}})
def readyz(runtime: RuntimeDep) -> HealthStatus | JSONResponse:
    """Every dependency answers: the database, storage, and where configured Redis, the
    broker and the in-process worker; and the preloaded local models are loaded and warm
    (`models`: "ok", "loading ...", or "failed: ...")."""
    checks = runtime.check_dependencies()
    if all(value == "ok" for value in checks.values()):
        return HealthStatus(status="ok", checks=checks)
    body = HealthStatus(status="unavailable", checks=checks).model_dump()
    return JSONResponse(body, status_code=503)


@router.get("/metrics", response_class=Response)
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics: requests, latencies, jobs, queue depth, spend, memory."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
