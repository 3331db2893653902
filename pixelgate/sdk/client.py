"""`Client` and `AsyncClient`: one server, one key, one connection pool."""

from __future__ import annotations

from types import TracebackType

from pixelgate.sdk.admin import Admin, AsyncAdmin
from pixelgate.sdk.async_resources import AsyncFiles, AsyncImages, AsyncJobs, AsyncModels
from pixelgate.sdk.batches import AsyncBatches, Batches
from pixelgate.sdk.config import ClientConfig
from pixelgate.sdk.resources import Files, Images, Jobs, Models
from pixelgate.sdk.transport import AsyncTransport, SyncTransport
from pixelgate.sdk.webhooks import AsyncWebhooks, Webhooks


class Client:
    """A blocking client of pixelgate's native API.

    `base_url` defaults to `PIXELGATE_URL` (else `http://127.0.0.1:8000`); `api_key` to
    `PIXELGATE_API_KEY`, else the admin key a local server keeps in its data directory.
    `timeout` is in seconds; `max_retries` bounds the retries of rate-limited requests (and of
    reads that met a gateway error or a broken connection).

        with pixelgate.Client(api_key="pg_...") as client:
            result = client.images.generate(model="local/tiny", prompt="a red circle", seed=7)
            result.data[0].save("circle.png")
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        self.config = ClientConfig.resolve(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
        self._transport = SyncTransport(self.config)
        self.images = Images(self._transport)
        self.batches = Batches(self._transport)
        self.jobs = Jobs(self._transport)
        self.models = Models(self._transport)
        self.files = Files(self._transport)
        self.webhooks = Webhooks(self._transport)
        self.admin = Admin(self._transport)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"


class AsyncClient:
    """The async twin of `Client`, with the same arguments and resources.

    async with pixelgate.AsyncClient() as client:
        job = await client.images.submit(model="local/tiny", prompt="a boat")
        job = await client.jobs.wait(job.id)
        await job.result.data[0].asave("boat.png")
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        self.config = ClientConfig.resolve(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
        self._transport = AsyncTransport(self.config)
        self.images = AsyncImages(self._transport)
        self.batches = AsyncBatches(self._transport)
        self.jobs = AsyncJobs(self._transport)
        self.models = AsyncModels(self._transport)
        self.files = AsyncFiles(self._transport)
        self.webhooks = AsyncWebhooks(self._transport)
        self.admin = AsyncAdmin(self._transport)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    async def close(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"
