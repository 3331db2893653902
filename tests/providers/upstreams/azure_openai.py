"""A fake Azure OpenAI resource: OpenAI's Images API (the fake in `openai.py`) behind
deployment paths, an `api-version` query and Azure's credentials."""

from __future__ import annotations

import dataclasses
from email.message import Message
from urllib.parse import parse_qs

from tests.providers.upstreams.openai import EDITS, GENERATIONS, FakeOpenAI, openai_error
from tests.providers.upstreams.server import Received, Reply

DEPLOYMENT_PREFIX = "/openai/deployments/"
API_VERSION = "2025-04-01-preview"


def deployment_path(deployment: str, operation: str) -> str:
    """`operation`: `generations` or `edits`."""
    return f"{DEPLOYMENT_PREFIX}{deployment}/images/{operation}"


class FakeAzureOpenAI(FakeOpenAI):
    def __init__(self, *, key: str, entra_token: str, deployments: dict[str, str]) -> None:
        """`deployments`: deployment name → the model it runs."""
        super().__init__(key)
        self.entra_token = entra_token
        self.deployments = deployments

    def handle(self, request: Received) -> Reply:
        if not request.path.startswith(DEPLOYMENT_PREFIX):
            return openai_error(404, "Resource not found", type="invalid_request_error", code="404")
        deployment, _, operation = request.path.removeprefix(DEPLOYMENT_PREFIX).partition("/")
        model = self.deployments.get(deployment)
        if model is None:
            return openai_error(
                404,
                "The API deployment for this resource does not exist.",
                type="invalid_request_error",
                code="DeploymentNotFound",
            )
        if parse_qs(request.query).get("api-version") != [API_VERSION]:
            return openai_error(404, "Resource not found", type="invalid_request_error", code="404")
        credentials = (
            request.headers.get("api-key") == self.key
            or request.headers.get("authorization") == f"Bearer {self.entra_token}"
        )
        if not credentials:
            return openai_error(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint.",
                type="invalid_request_error",
                code="401",
            )
        openai_path = {"images/generations": GENERATIONS, "images/edits": EDITS}.get(operation)
        if openai_path is None:
            return openai_error(404, "Resource not found", type="invalid_request_error", code="404")
        # the deployment, not the body, picks the model; the rest is OpenAI's protocol
        headers = Message()
        headers["authorization"] = f"Bearer {self.key}"
        headers["content-type"] = str(request.headers.get("content-type", ""))
        request = dataclasses.replace(request, path=openai_path, headers=headers)
        if request.json is not None:
            request = dataclasses.replace(request, json=request.json | {"model": model})
        return super().handle(request)
