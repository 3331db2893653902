"""The one error hierarchy, shared by the server and the SDK.

    Error
    ├── ValidationError        VALIDATION_ERROR     400
    │   └── MustProvideFile    MUST_PROVIDE_FILE    400
    ├── Unauthorized           UNAUTHORIZED         401
    ├── WebhookVerificationError  WEBHOOK_VERIFICATION_FAILED  400  (SDK: a delivery is not
    │                                                                pixelgate's, or is stale)
    ├── BudgetExceeded         BUDGET_EXCEEDED      402
    ├── Forbidden              FORBIDDEN            403
    ├── ModelAccessDenied      MODEL_ACCESS_DENIED  403
    ├── NotFound               NOT_FOUND            404
    ├── Conflict               CONFLICT             409
    │   └── Canceled           CANCELED             409
    ├── PayloadTooLarge        PAYLOAD_TOO_LARGE    413
    ├── RateLimited            RATE_LIMITED         429
    ├── InternalError          INTERNAL_ERROR       500
    ├── BackendError           BACKEND_ERROR        502
    │   └── WorkerCrashed      WORKER_CRASHED       502
    ├── ServiceUnavailable     SERVICE_UNAVAILABLE  503
    ├── APIConnectionError     CONNECTION_ERROR     503  (SDK: the server could not be reached)
    ├── ModelUnavailable       MODEL_UNAVAILABLE    503
    ├── Timeout                TIMEOUT              504
    │   └── ProviderTimeout    TIMEOUT              504  (not retried: the provider may bill it)
    └── StorageError           STORAGE_ERROR        507

Each class carries its wire `code` and HTTP `status`; `api/errors.py` renders them and the SDK
raises them again from a response with `error_from_code`.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "APIConnectionError",
    "BackendError",
    "BudgetExceeded",
    "Canceled",
    "Conflict",
    "Error",
    "Forbidden",
    "InternalError",
    "ModelAccessDenied",
    "ModelUnavailable",
    "MustProvideFile",
    "NotFound",
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
    "error_from_code",
]


class Error(Exception):
    """Base of every error pixelgate raises; `code` and `status` say how it goes on the wire."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    """Whether a job that failed with this may succeed if run again (a worker retries it)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "param": self.param}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, param={self.param!r})"


class ValidationError(Error):
    code = "VALIDATION_ERROR"
    status = 400


class MustProvideFile(ValidationError):
    code = "MUST_PROVIDE_FILE"


class Unauthorized(Error):
    code = "UNAUTHORIZED"
    status = 401


class WebhookVerificationError(Error):
    """A webhook delivery failed verification (`pixelgate.verify_webhook`): a header is
    missing, the signature does not match the body and secret, or the timestamp is too old
    or too far ahead. A receiver answers it with 400 and drops the delivery."""

    code = "WEBHOOK_VERIFICATION_FAILED"
    status = 400


class BudgetExceeded(Error):
    code = "BUDGET_EXCEEDED"
    status = 402


class Forbidden(Error):
    code = "FORBIDDEN"
    status = 403


class ModelAccessDenied(Error):
    code = "MODEL_ACCESS_DENIED"
    status = 403


class NotFound(Error):
    code = "NOT_FOUND"
    status = 404


class Conflict(Error):
    code = "CONFLICT"
    status = 409


class Canceled(Conflict):
    """The job was canceled before it produced a result."""

    code = "CANCELED"


class PayloadTooLarge(Error):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class RateLimited(Error):
    code = "RATE_LIMITED"
    status = 429

    def __init__(
        self, message: str, *, param: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after


class InternalError(Error):
    code = "INTERNAL_ERROR"
    status = 500


class BackendError(Error):
    """A provider failed, or its safety filter refused the request."""

    code = "BACKEND_ERROR"
    status = 502


class WorkerCrashed(BackendError):
    """The process running a local model died mid-job (a crash or an out-of-memory kill); the
    job is tried again while it has attempts left."""

    code = "WORKER_CRASHED"
    retryable = True


class ServiceUnavailable(Error):
    """A dependency (the database, Redis, storage) is down; try again shortly."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    retryable = True


class APIConnectionError(Error):
    """The SDK could not reach the server, or the connection broke before an answer came."""

    code = "CONNECTION_ERROR"
    status = 503


class ModelUnavailable(Error):
    """The model exists in the catalog but cannot run here (provider not configured, weights
    missing)."""

    code = "MODEL_UNAVAILABLE"
    status = 503


class Timeout(Error):
    code = "TIMEOUT"
    status = 504
    retryable = True


class ProviderTimeout(Timeout):
    """A hosted provider did not finish in time after it may have accepted the request (and
    billed it): the job fails, refunded, and is never retried by sending the request again."""

    retryable = False


class StorageError(Error):
    """A result could not be stored (the disk is full, the storage refused the write). The job
    fails at once and is refunded: trying again would fail the same way until an operator
    acts. 507 Insufficient Storage (RFC 4918) says exactly this, unlike a 503, which tells
    clients and load balancers that the service is overloaded and to retry shortly."""

    code = "STORAGE_ERROR"
    status = 507


def _all_subclasses(cls: type[Error]) -> list[type[Error]]:
    found: list[type[Error]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


_BY_CODE: dict[str, type[Error]] = {}
for _cls in _all_subclasses(Error):
    _BY_CODE.setdefault(_cls.code, _cls)  # a code's first class: `Timeout`, not its subclass


def error_from_code(code: str, message: str, *, param: str | None = None) -> Error:
    """Rebuild the exception for a wire `code`; an unknown code becomes a plain `Error`."""
    cls = _BY_CODE.get(code, Error)
    return cls(message, param=param)
