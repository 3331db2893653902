"""The catalog, as the caller may use it.

`GET /v1/models` is also the path of OpenAI's model list, so its body satisfies both: the native
envelope (`status`, `data`) plus OpenAI's `object: "list"`, and OpenAI's `object`, `created` and
`owned_by` in each model. The `openai` SDK's `models.list()` reads it as is. `GET /v1/models/{id}`
likewise carries OpenAI's model fields beside the envelope, for `models.retrieve()`.
`/oai/v1/models` is the pure OpenAI shape (see `pixelgate/api/openai/routes.py`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from pixelgate.api import views
from pixelgate.api.deps import CurrentPrincipal, RuntimeDep
from pixelgate.api.protocol import ModelEnvelope, ModelList

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelList)
def list_models(
    principal: CurrentPrincipal, runtime: RuntimeDep, modality: Literal["image"] | None = None
) -> ModelList:
    """The models the caller may use, each saying whether it can run here now and why not."""
    specs = runtime.model_directory.visible_to(principal, modality=modality)
    return ModelList(data=[views.model_public(runtime, principal, spec) for spec in specs])


@router.get("/{model_id:path}", response_model=ModelEnvelope)
def get_model(model_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> ModelEnvelope:
    """One model by id or alias; OpenAI's fields beside the envelope serve the `openai` SDKs."""
    spec = runtime.model_directory.find(principal, model_id)
    model = views.model_public(runtime, principal, spec)
    return ModelEnvelope(data=model, id=model.id, created=model.created, owned_by=model.owned_by)
