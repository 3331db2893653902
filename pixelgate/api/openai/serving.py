"""The OpenAI Images API over pixelgate's jobs (no route decorators here; see `routes.py`).

A request becomes an `ImageCommand` and goes through `JobService.submit` like a native one, so
the same keys, tenants, model access, budgets, rate limits, idempotency and cache apply; the job
then becomes OpenAI's response. The only thing decided here is how OpenAI's fields map onto each
model's option family, and that is decided in one place, `family_options`:

- `prompt` and `n` are every family's own.
- `size` and `quality` go to the service as they are, which translates them for every model
  as on the native API (`pixelgate/service/portable_options.py`): `WxH` becomes the nearest
  width and height a local or FLUX model takes, or an aspect ratio; `quality` a model's own
  value or steps.
- `style`, `background`, `output_format`, ...: passed on to families that declare them. To a
  family that does not, a value that asks for nothing different from what it does anyway
  (`moderation: "auto"`, `stream: false`, ...) is ignored and any other value is an
  `invalid_request_error` naming the field.
- `response_format`: unset means `b64_json` for gpt-image models and `url` otherwise, as OpenAI
  does. `url` is a signed pixelgate media link, never a provider's.
- `user` is every family's option: sent upstream by the OpenAI provider, kept with the job by
  the others. `metadata` (pixelgate's own) is stored with the job, as on the native API.
- Any other field (`extra_body` in the SDK) is one of the model's own options (`seed`,
  `negative_prompt`, `num_steps`, `strength`, ...), checked by its family: unknown ones are
  refused with the list of what the model takes.

The surface is synchronous, as OpenAI's is: `Prefer: respond-async` is not honoured here, while
`Idempotency-Key` and `Cache-Control: no-cache` are.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from pixelgate.api import views
from pixelgate.api.body import Body, BodyRules, read_body, validate
from pixelgate.api.openai.protocol import (
    Image,
    ImageEditRequest,
    ImageGenerationRequest,
    ImageRequest,
    ImagesResponse,
    ImageVariationRequest,
    Model,
    ModelList,
)
from pixelgate.api.submission import SubmitHeaders
from pixelgate.catalog import OPTION_FAMILIES, ModelSpec, TaskKind
from pixelgate.db.tables import Job
from pixelgate.errors import ValidationError
from pixelgate.runtime import Runtime
from pixelgate.service.access import Principal
from pixelgate.service.inputs import ImageUpload
from pixelgate.service.jobs import ImageCommand, ResponseFormat

JOB_HEADER = "X-Pixelgate-Job-Id"
"""Each response names its job, to look up with the native API."""

ALWAYS_OPTIONS = frozenset({"prompt", "n", "size", "quality"})
"""Fields every family takes (a family without a prompt is refused by the task check; the
service translates `size` and `quality` for each model)."""

NOT_OPTIONS = frozenset({"model", "response_format", "metadata", "fallbacks"})

NEUTRAL: dict[str, frozenset[object]] = {
    "background": frozenset({"auto", "opaque"}),
    "output_format": frozenset({"png"}),
    "output_compression": frozenset({100}),
    "moderation": frozenset({"auto"}),
    "input_fidelity": frozenset({"low"}),
    "partial_images": frozenset({0}),
    "stream": frozenset({False}),
}
"""Values that ask a family without the field for nothing it does not do already."""

B64_BY_DEFAULT = frozenset({"gpt-image"})
"""Families whose OpenAI default `response_format` is `b64_json`."""

TEXT_FIELDS = frozenset({"prompt", "negative_prompt"})
"""Form fields that stay text; other extra form fields are read as JSON when they are JSON."""

GENERATION_RULES = BodyRules()
"""Generations: a JSON body, no files."""


def family_options(spec: ModelSpec, request: ImageRequest) -> dict[str, Any]:
    """The model's options for an OpenAI request: the one map from OpenAI's fields to each
    option family's."""
    accepted = OPTION_FAMILIES[spec.family].model_fields
    extras = request.model_extra or {}
    declared = request.model_dump(exclude_none=True, exclude={*NOT_OPTIONS, *extras})
    options: dict[str, Any] = {}
    for name, value in declared.items():
        if name in ALWAYS_OPTIONS or name in accepted:
            options[name] = value
        elif value not in NEUTRAL.get(name, ()):
            raise ValidationError(
                f"Model {spec.id!r} does not support {name}={value!r}", param=name
            )
    return options | extras


def default_response_format(spec: ModelSpec) -> ResponseFormat:
    return "b64_json" if spec.family in B64_BY_DEFAULT else "url"


class OpenAIServing:
    """One request's view of the OpenAI surface: its caller, headers and links."""

    def __init__(
        self,
        runtime: Runtime,
        principal: Principal,
        *,
        request: Request,
        response: Response,
        base_url: str,
        headers: SubmitHeaders,
    ) -> None:
        self._runtime = runtime
        self._principal = principal
        self._request = request
        self._response = response
        self._base_url = base_url
        self._headers = headers

    # -- images ---------------------------------------------------------------------------

    async def generate(self) -> ImagesResponse:
        sent = await read_body(self._request, GENERATION_RULES)
        return await self._run("generate", validate(ImageGenerationRequest, sent.fields))

    async def edit(self) -> ImagesResponse:
        sent = await self._read_form(ImageEditRequest, files=("image", "image[]", "mask"))
        body = validate(ImageEditRequest, sent.fields)
        return await self._run(
            "edit", body, image=_one(sent, "image", body), mask=_one(sent, "mask", body)
        )

    async def variation(self) -> ImagesResponse:
        sent = await self._read_form(ImageVariationRequest, files=("image", "image[]"))
        body = validate(ImageVariationRequest, sent.fields)
        return await self._run("variation", body, image=_one(sent, "image", body))

    async def _run(
        self,
        task: TaskKind,
        body: ImageRequest,
        *,
        image: ImageUpload | None = None,
        mask: ImageUpload | None = None,
    ) -> ImagesResponse:
        runtime = self._runtime
        spec = runtime.catalog.resolve(body.model)
        command, _ = self._headers.apply(
            ImageCommand(
                task=task,
                model=body.model,
                options=family_options(spec, body),
                response_format=body.response_format or default_response_format(spec),
                metadata=body.metadata,
                image=image,
                mask=mask,
                fallbacks=None if body.fallbacks is None else tuple(body.fallbacks),
            ),
            async_in_body=False,
        )
        job_id, images = await runtime.jobs.run(
            self._principal,
            command,
            timeout=runtime.settings.sync_timeout_seconds,
            disconnected=self._request.is_disconnected,
            answer=lambda job: (job.id, self._images_response(job)),
        )
        self._response.headers[JOB_HEADER] = job_id
        return images

    def _images_response(self, job: Job) -> ImagesResponse:
        options = job.options
        return ImagesResponse(
            created=job.result.created if job.result is not None else 0,
            data=[
                Image(
                    url=self._base_url + output.media_path if output.media_path else None,
                    b64_json=output.b64_json,
                    revised_prompt=output.revised_prompt,
                )
                for output in self._runtime.jobs.outputs(job)
            ],
            size=options.size,
            quality=options.quality,
            output_format=options.output_format,
            background=options.background,
            cost=views.cost_public(job),
        )

    async def _read_form(self, model: type[ImageRequest], *, files: tuple[str, ...]) -> Body:
        """A multipart (or url-encoded) body: its fields, and its files `image` (several as
        `image` or `image[]`, as the SDK sends a list) and, for edits, `mask`. Declared fields
        stay text (pydantic coerces them); the model's own options are read as JSON when they
        are JSON (`7`, `0.6`, `true`)."""
        rules = BodyRules(
            files=files,
            text_fields={*model.model_fields, *TEXT_FIELDS} - {"fallbacks"},
            lists=("fallbacks",),
            json=False,
        )
        sent = await read_body(self._request, rules)
        if "fallbacks[]" in sent.fields:
            sent.fields["fallbacks"] = sent.fields.get("fallbacks", []) + sent.fields.pop(
                "fallbacks[]"
            )
        if "image[]" in sent.files:
            sent.files["image"] = sent.files.get("image", []) + sent.files.pop("image[]")
        for name in files:
            if name in sent.fields:
                raise ValidationError(f"{name} must be sent as a file", param=name)
        return sent

    # -- models ---------------------------------------------------------------------------

    def list_models(self) -> ModelList:
        """The models the caller may use and that can run here now: OpenAI's model object has
        no field to say that one cannot, which the native list says."""
        specs = self._runtime.model_directory.visible_to(self._principal, runnable_only=True)
        return ModelList(data=[self._model(spec) for spec in specs])

    def get_model(self, model_id: str) -> Model:
        return self._model(self._runtime.model_directory.find(self._principal, model_id))

    def _model(self, spec: ModelSpec) -> Model:
        created = int(self._runtime.clock.now().timestamp())
        return Model(id=spec.id, created=created, owned_by=spec.provider)


def _one(sent: Body, name: str, body: ImageRequest) -> ImageUpload | None:
    """The one file sent as `name`; pixelgate's models take one input image (and one mask)."""
    files = sent.files.get(name, [])
    if len(files) > 1:
        raise ValidationError(
            f"Model {body.model!r} takes one {name}; got {len(files)}", param=name
        )
    return ImageUpload(name, data=files[0]) if files else None
