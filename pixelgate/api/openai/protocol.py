"""The OpenAI Images API's request and response bodies, as pixelgate serves them (pydantic
only; no logic). Field names and meanings follow platform.openai.com/docs/api-reference/images.

Requests allow extra fields: those are the model's own options (`seed`, `negative_prompt`,
`num_steps`, ... — the `openai` SDK sends them with `extra_body`), checked by the model's option
family like every other option. Values are checked per model there too (`size` and `quality` as
on the native API, for every model), so they are plain strings here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pixelgate.api.protocol import CostPublic

ResponseFormat = Literal["url", "b64_json"]
MetadataValue = str | int | float | bool | None


class ImageRequest(BaseModel):
    """The fields every Images endpoint shares."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(
        default="dall-e-2",
        description="A catalog model id or alias, local or hosted; OpenAI's default when unset.",
    )
    n: int | None = Field(default=None, description="How many images; the model's limit applies.")
    size: str | None = Field(
        default=None,
        description="`WxH` or `auto`, for every model: a model's own list of sizes, or the "
        "nearest width and height (or aspect ratio) it takes.",
    )
    response_format: ResponseFormat | None = Field(
        default=None,
        description="`url` (a signed pixelgate link) or `b64_json`. Unset: `b64_json` for "
        "gpt-image models, `url` for every other model, as OpenAI does.",
    )
    user: str | None = Field(
        default=None,
        max_length=256,
        description="Your end user's id: sent to OpenAI's models, kept with the job for others.",
    )
    metadata: dict[str, MetadataValue] | None = Field(
        default=None,
        max_length=32,
        description="pixelgate's own: stored with the job (see the native `GET /v1/jobs/{id}`).",
    )
    fallbacks: list[str] | None = Field(
        default=None,
        description="pixelgate's own: models to serve the request when `model` cannot (see the "
        "native generate); unset: the catalog's default route.",
    )


class ImageGenerationRequest(ImageRequest):
    """`POST /v1/images/generations` (JSON)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"model": "local/tiny", "prompt": "a red circle", "size": "64x64"},
                {"model": "dall-e-3", "prompt": "a lighthouse", "size": "1792x1024"},
            ]
        },
    )

    prompt: str
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    moderation: str | None = None
    partial_images: int | None = None
    stream: bool | None = None


class ImageEditRequest(ImageRequest):
    """`POST /v1/images/edits` (multipart): these fields beside the files `image` (or
    `image[]`) and `mask`."""

    prompt: str
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    input_fidelity: str | None = None
    partial_images: int | None = None
    stream: bool | None = None


class ImageVariationRequest(ImageRequest):
    """`POST /v1/images/variations` (multipart): these fields beside the file `image`."""


class Image(BaseModel):
    url: str | None = Field(default=None, description="A signed pixelgate link; it expires.")
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[Image]
    size: str | None = None
    quality: str | None = None
    output_format: str | None = None
    background: str | None = None
    cost: CostPublic | None = Field(
        default=None,
        description="pixelgate's own: what the request cost. An extra field, which the "
        "official SDKs keep (`response.cost` in Python, `response.cost` in Node).",
    )


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
