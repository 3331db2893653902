"""Signed media links and stored files."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter
from fastapi.responses import Response

from pixelgate.api import views
from pixelgate.api.deps import BaseUrl, GeneratePrincipal, PageFilters, ReadPrincipal, RuntimeDep
from pixelgate.api.protocol import Deleted, Envelope, FilePublic, ListEnvelope

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


@router.get("/v1/files", response_model=ListEnvelope[FilePublic])
def list_files(
    principal: ReadPrincipal,
    runtime: RuntimeDep,
    base_url: BaseUrl,
    filters: PageFilters,
    job_id: str | None = None,
) -> ListEnvelope[FilePublic]:
    """The caller's stored results, newest first, each with a fresh link, its model and
    prompt; a page at a time (`after`/`before` an id, `limit`), of one `job_id` or `model`
    and creation range (`created_after` inclusive, `created_before` exclusive: ISO 8601 or
    unix seconds), whose prompt contains `q` (any case)."""
    page = runtime.history.files(principal.tenant_id, replace(filters, job_id=job_id))
    items = [views.file_public(runtime, entry, base_url) for entry in page.items]
    return ListEnvelope(**views.page_public(items), has_more=page.has_more)


@router.get("/v1/files/{file_id}", response_model=Envelope[FilePublic])
def get_file(
    file_id: str, principal: ReadPrincipal, runtime: RuntimeDep, base_url: BaseUrl
) -> Envelope[FilePublic]:
    """A stored result with a fresh link."""
    entry = runtime.history.file(principal.tenant_id, file_id)
    return Envelope(data=views.file_public(runtime, entry, base_url))


@router.delete("/v1/files/{file_id}", response_model=Envelope[Deleted])
def delete_file(
    file_id: str, principal: GeneratePrincipal, runtime: RuntimeDep
) -> Envelope[Deleted]:
    """Delete a stored result: its record at once (its links and `GET` answer 404), and its
    bytes unless another file holds the same ones. Needs the `generate` scope."""
    runtime.history.delete_file(principal.tenant_id, file_id)
    return Envelope(data=Deleted(id=file_id, object="file"))


@router.get("/v1/files/{file_id}/content", response_class=Response)
def get_file_content(file_id: str, principal: ReadPrincipal, runtime: RuntimeDep) -> Response:
    """A stored result's bytes, with the API key instead of a link."""
    record = runtime.files.get(principal.tenant_id, file_id)
    return Response(runtime.files.read(record), media_type=record.content_type)
