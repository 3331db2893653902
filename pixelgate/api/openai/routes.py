"""The OpenAI Images API's routes, mounted twice with the same handlers: under `/v1`, so the
`openai` SDK works with `base_url=".../v1"`, and under `/oai/v1`.

`GET /v1/models` and `GET /v1/models/{id}` belong to the native API (`routes/models.py`), whose
bodies also satisfy the `openai` SDKs' `models.list()` and `models.retrieve()`: the list carries
OpenAI's `object: "list"` and, in each model, `object`, `created` and `owned_by`; one model has
those four fields beside its envelope. Only `/oai/v1/models` (and `/oai/v1/models/{id}`) answer
in OpenAI's pure shape, listing what the caller may use and can run now. Content negotiation
could not tell the two callers apart: both send `Accept: application/json`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from pixelgate.api.deps import current_principal, get_base_url, get_runtime
from pixelgate.api.openai.protocol import (
    ErrorResponse,
    ImageGenerationRequest,
    ImagesResponse,
    Model,
    ModelList,
)
from pixelgate.api.openai.serving import OpenAIServing
from pixelgate.api.submission import submit_headers


async def openai_serving(request: Request, response: Response) -> OpenAIServing:
    """One dependency that reads its four headers itself (see `HEADERS`): FastAPI's solving
    and checking of declared parameters cost the event loop more than the route's own work."""
    headers = request.headers
    runtime = await get_runtime(request)
    return OpenAIServing(
        runtime,
        await current_principal(runtime, headers.get("authorization")),
        request=request,
        response=response,
        base_url=await get_base_url(request, runtime),
        headers=await submit_headers(
            headers.get("prefer"), headers.get("idempotency-key"), headers.get("cache-control")
        ),
    )


HEADERS: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
        for name in ("prefer", "idempotency-key", "cache-control")
    ]
}
"""The headers `openai_serving` reads, as the OpenAPI parameters of every route; the fourth,
`authorization`, is the document's bearer scheme (api/openapi.py)."""


Serving = Annotated[OpenAIServing, Depends(openai_serving)]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 429, 502, 503, 504)
}


def _multipart(files: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    properties = {name: {"type": "string", "format": "binary"} for name in files}
    properties |= {name: {"type": "string"} for name in fields}
    schema = {"type": "object", "properties": properties, "additionalProperties": True}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


GENERATION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ImageGenerationRequest.model_json_schema()}},
    }
}
EDIT_BODY = _multipart(
    {"image": "", "mask": ""},
    ["prompt", "model", "n", "size", "quality", "response_format", "background", "output_format"],
)
VARIATION_BODY = _multipart({"image": ""}, ["model", "n", "size", "response_format", "user"])


async def create_image(serving: Serving) -> ImagesResponse:
    """Text-to-image with any catalog model, local or hosted (JSON)."""
    return await serving.generate()


async def create_image_edit(serving: Serving) -> ImagesResponse:
    """Image-to-image or inpainting (multipart: `image`, optional `mask`, fields)."""
    return await serving.edit()


async def create_image_variation(serving: Serving) -> ImagesResponse:
    """Variations of an image (multipart: `image`, fields), for models that make them."""
    return await serving.variation()


def list_models(serving: Serving) -> ModelList:
    return serving.list_models()


def retrieve_model(model_id: str, serving: Serving) -> Model:
    return serving.get_model(model_id)


def build_router(prefix: str, *, tag: str, with_models: bool, in_schema: bool) -> APIRouter:
    """The routes under `prefix`; `tag` begins their operation ids, unique across mounts."""
    router = APIRouter(prefix=prefix, tags=[tag], include_in_schema=in_schema)
    images: dict[str, Any] = {
        "methods": ["POST"],
        "response_model": ImagesResponse,
        "response_model_exclude_none": True,
        "responses": ERRORS,
    }
    router.add_api_route(
        "/images/generations", create_image, openapi_extra=GENERATION_BODY | HEADERS, **images
    )
    router.add_api_route(
        "/images/edits", create_image_edit, openapi_extra=EDIT_BODY | HEADERS, **images
    )
    router.add_api_route(
        "/images/variations",
        create_image_variation,
        openapi_extra=VARIATION_BODY | HEADERS,
        **images,
    )
    if with_models:
        models: dict[str, Any] = {"responses": ERRORS, "openapi_extra": HEADERS}
        router.add_api_route("/models", list_models, response_model=ModelList, **models)
        router.add_api_route(
            "/models/{model_id:path}", retrieve_model, response_model=Model, **models
        )
    return router


router = build_router("/v1", tag="openai", with_models=False, in_schema=True)
"""Beside the native routes; `/v1/models` is the native one."""
oai_router = build_router("/oai/v1", tag="oai", with_models=True, in_schema=False)
