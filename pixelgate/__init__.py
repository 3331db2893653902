"""pixelgate: one API for every image model, local or hosted.

import pixelgate

with pixelgate.Client() as client:
    client.images.generate(model="local/tiny", prompt="a red circle").data[0].save("a.png")
"""

from typing import TYPE_CHECKING

from pixelgate.errors import (
    APIConnectionError,
    BackendError,
    BudgetExceeded,
    Canceled,
    Conflict,
    Error,
    Forbidden,
    InternalError,
    ModelAccessDenied,
    ModelUnavailable,
    MustProvideFile,
    NotFound,
    PayloadTooLarge,
    ProviderTimeout,
    RateLimited,
    ServiceUnavailable,
    StorageError,
    Timeout,
    Unauthorized,
    ValidationError,
    WebhookVerificationError,
    WorkerCrashed,
)

if TYPE_CHECKING:
    from pixelgate.sdk import (
        AsyncClient,
        Batch,
        BatchItem,
        Client,
        Cost,
        File,
        Image,
        ImagesResponse,
        Job,
        JobError,
        JobEvent,
        Model,
        Page,
        verify_webhook,
    )

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "AsyncClient",
    "BackendError",
    "Batch",
    "BatchItem",
    "BudgetExceeded",
    "Canceled",
    "Client",
    "Conflict",
    "Cost",
    "Error",
    "File",
    "Forbidden",
    "Image",
    "ImagesResponse",
    "InternalError",
    "Job",
    "JobError",
    "JobEvent",
    "Model",
    "ModelAccessDenied",
    "ModelUnavailable",
    "MustProvideFile",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "ProviderTimeout",
    "RateLimited",
    "ServiceUnavailable",
    "StorageError",
    "Timeout",
    "Unauthorized",
    "ValidationError",
    "WebhookVerificationError",
    "WorkerCrashed",
    "__version__",
    "verify_webhook",
]


def __getattr__(name: str) -> object:
    """The SDK's names, imported on first use: processes that only need pixelgate's other
    modules (the server's model worker process, which starts with every `pixelgate serve`)
    skip the HTTP client's imports."""
    import pixelgate.sdk

    if name in pixelgate.sdk.__all__:
        return getattr(pixelgate.sdk, name)
    raise AttributeError(f"module 'pixelgate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
