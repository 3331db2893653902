"""Signed media links and stored files."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from pixelgate.api import views
from pixelgate.api.deps import BaseUrl, CurrentPrincipal, RuntimeDep
from pixelgate.api.protocol import Envelope, FilePublic

router = APIRouter(tags=["files"])


@router.get(
    "/v1/media/{token}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}},
)
def media(token: str, runtime: RuntimeDep) -> Response:
    """The image behind a signed link. Needs no API key: the link is the credential."""
    record, data = runtime.files.open_link(token)
    return Response(
        data,
        media_type=record.content_type,
        headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/v1/files/{file_id}", response_model=Envelope[FilePublic])
def get_file(
    file_id: str, principal: CurrentPrincipal, runtime: RuntimeDep, base_url: BaseUrl
) -> Envelope[FilePublic]:
    """A stored result with a fresh link."""
    principal.require("read")
    record = runtime.files.get(principal.tenant_id, file_id)
    return Envelope(data=views.file_public(runtime, record, base_url))


@router.get("/v1/files/{file_id}/content", response_class=Response)
def get_file_content(file_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> Response:
    """A stored result's bytes, with the API key instead of a link."""
    principal.require("read")
    record = runtime.files.get(principal.tenant_id, file_id)
    return Response(runtime.files.read(record), media_type=record.content_type)
