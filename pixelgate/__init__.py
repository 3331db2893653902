"""pixelgate: one API for every image model, local or hosted.

import pixelgate

with pixelgate.Client() as client:
    client.images.generate(model="local/tiny", prompt="a red circle").data[0].save("a.png")
"""

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
    WorkerCrashed,
)
from pixelgate.sdk import (
    AsyncClient,
    Batch,
    BatchItem,
    Client,
    File,
    Image,
    ImagesResponse,
    Job,
    JobError,
    JobEvent,
    Model,
    Page,
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
    "WorkerCrashed",
    "__version__",
]
