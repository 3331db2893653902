"""pixelgate's Python SDK: `Client` and `AsyncClient` for the native HTTP API."""

from pixelgate.sdk.client import AsyncClient, Client
from pixelgate.sdk.types import (
    Batch,
    BatchItem,
    Cost,
    File,
    Image,
    ImagesResponse,
    Job,
    JobError,
    JobEvent,
    Model,
    Page,
)
from pixelgate.webhook_signatures import verify_webhook

__all__ = [
    "AsyncClient",
    "Batch",
    "BatchItem",
    "Client",
    "Cost",
    "File",
    "Image",
    "ImagesResponse",
    "Job",
    "JobError",
    "JobEvent",
    "Model",
    "Page",
    "verify_webhook",
]
