"""The async client's resources: the same surface as `resources`, awaited."""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any, Literal, TypeVar, Unpack

import anyio

from pixelgate.errors import APIConnectionError, Timeout
from pixelgate.sdk.endpoints import (
    EDIT_PATH,
    REMOVE_BACKGROUND_PATH,
    UPSCALE_PATH,
    FileFilters,
    JobFilters,
    ResponseFormat,
    edit_body,
    file_path,
    generate_body,
    job_path,
    list_params,
    model_path,
    only_url,
    remove_background_upload,
    upscale_body,
)
from pixelgate.sdk.resources import FILES_PATH, GENERATE_PATH, JOBS_PATH
from pixelgate.sdk.transport import AsyncTransport, data_list, data_object, data_page
from pixelgate.sdk.types import File, ImagesResponse, Job, JobEvent, MetadataValue, Model, Page

T = TypeVar("T")


async def every_item(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """The items of every page, `await fetch(after)` asked for each page after the last."""
    after = None
    while True:
        page = await fetch(after)
        for item in page:
            yield item
        if not page.has_more or page.last_id is None:
            return
        after = page.last_id


class AsyncImages:
    """Text-to-image.

    result = await client.images.generate(model="local/tiny", prompt="a red circle")
    await result.data[0].asave("circle.png")
    """

    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def generate(
        self,
        *,
        model: str,
        prompt: str,
        response_format: ResponseFormat = "url",
        metadata: dict[str, MetadataValue] | None = None,
        fallbacks: Sequence[str] | None = None,
        **options: Any,
    ) -> ImagesResponse:
        """Generate and wait for the images; `options` are the model's own, `fallbacks` as for
        `Client.images.generate`."""
        body = generate_body(
            model=model,
            prompt=prompt,
            response_format=response_format,
            metadata=metadata,
            options=options,
            fallbacks=fallbacks,
            run_async=False,
        )
        response = await self._transport.request("POST", GENERATE_PATH, json=body)
        return ImagesResponse.from_dict(data_object(response), self._transport)

    async def generate_url(self, prompt: str, options: Mapping[str, Any] | None = None) -> str:
        """Generate one image and return its link (signed; it expires, after an hour by
        default). `options` are the request's fields and the model's options, under their own
        names or in camelCase, as the native API takes them:

            url = await client.images.generate_url(
                "a lighthouse", {"modelName": "dall-e-3", "size": "1024x1792", "quality": "hd"}
            )
        """
        body = {**(options or {}), "prompt": prompt, "async": False}
        response = await self._transport.request("POST", GENERATE_PATH, json=body)
        return only_url(ImagesResponse.from_dict(data_object(response), self._transport))

    async def submit(
        self,
        *,
        model: str,
        prompt: str,
        response_format: ResponseFormat = "url",
        metadata: dict[str, MetadataValue] | None = None,
        fallbacks: Sequence[str] | None = None,
        **options: Any,
    ) -> Job:
        """Queue a generation and return its job at once."""
        body = generate_body(
            model=model,
            prompt=prompt,
            response_format=response_format,
            metadata=metadata,
            options=options,
            fallbacks=fallbacks,
            run_async=True,
        )
        response = await self._transport.request("POST", GENERATE_PATH, json=body)
        return Job.from_dict(data_object(response), self._transport)

    async def edit(
        self,
        image: str | Path | bytes,
        *,
        model: str,
        prompt: str,
        mask: str | Path | bytes | None = None,
        response_format: ResponseFormat = "url",
        metadata: dict[str, MetadataValue] | None = None,
        fallbacks: Sequence[str] | None = None,
        **options: Any,
    ) -> ImagesResponse:
        """Image-to-image, or inpainting with a `mask` (white repaints, black keeps), and wait
        for the images; like `Client.images.edit`.

            result = await client.images.edit("photo.png", model="local/tiny", prompt="a boat")
        """
        body = edit_body(
            model=model,
            prompt=prompt,
            image=image,
            mask=mask,
            response_format=response_format,
            metadata=metadata,
            options=options,
            fallbacks=fallbacks,
            run_async=False,
        )
        response = await self._transport.request("POST", EDIT_PATH, json=body)
        return ImagesResponse.from_dict(data_object(response), self._transport)

    async def submit_edit(
        self,
        image: str | Path | bytes,
        *,
        model: str,
        prompt: str,
        mask: str | Path | bytes | None = None,
        response_format: ResponseFormat = "url",
        metadata: dict[str, MetadataValue] | None = None,
        fallbacks: Sequence[str] | None = None,
        **options: Any,
    ) -> Job:
        """Queue an edit and return its job at once; follow it with `client.jobs`."""
        body = edit_body(
            model=model,
            prompt=prompt,
            image=image,
            mask=mask,
            response_format=response_format,
            metadata=metadata,
            options=options,
            fallbacks=fallbacks,
            run_async=True,
        )
        response = await self._transport.request("POST", EDIT_PATH, json=body)
        return Job.from_dict(data_object(response), self._transport)

    async def remove_background(
        self,
        data: str | Path | bytes,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        model: str | None = None,
        output_format: Literal["png", "webp"] | None = None,
        response_format: ResponseFormat = "url",
        metadata: dict[str, MetadataValue] | None = None,
    ) -> ImagesResponse:
        """Cut the subject out of a picture (a path or its bytes) and wait for the transparent
        PNG (or WebP). The picture is uploaded as a file named `filename` (a path's own name by
        default) of type `content_type` (guessed from the name by default). `model` defaults to
        the server's, `rembg/u2netp`.

            result = await client.images.remove_background("photo.jpg")
            await result.data[0].asave("cutout.png")
        """
        form = remove_background_upload(
            data=data,
            filename=filename,
            content_type=content_type,
            model=model,
            output_format=output_format,
            response_format=response_format,
            metadata=metadata,
            run_async=False,
        )
        response = await self._transport.request("POST", REMOVE_BACKGROUND_PATH, form=form)
        return ImagesResponse.from_dict(data_object(response), self._transport)

    async def submit_remove_background(
        self,
        data: str | Path | bytes,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        model: str | None = None,
        output_format: Literal["png", "webp"] | None = None,
        response_format: ResponseFormat = "url",
        metadata: dict[str, MetadataValue] | None = None,
    ) -> Job:
        """Queue a background removal and return its job at once."""
        form = remove_background_upload(
            data=data,
            filename=filename,
            content_type=content_type,
            model=model,
            output_format=output_format,
            response_format=response_format,
            metadata=metadata,
            run_async=True,
        )
        response = await self._transport.request("POST", REMOVE_BACKGROUND_PATH, form=form)
        return Job.from_dict(data_object(response), self._transport)

    async def upscale(
        self,
        image: str | Path | bytes | None = None,
        *,
        factor: int | None = None,
        model: str | None = None,
        prompt: str | None = None,
        file_id: str | None = None,
        response_format: ResponseFormat = "url",
        metadata: dict[str, MetadataValue] | None = None,
        **options: Any,
    ) -> ImagesResponse:
        """Enlarge a picture (a path or its bytes, or a stored result's `file_id`) `factor`
        times (2 or 4, as the model allows) and wait for it. `model` defaults to the server's,
        `pixelgate/lanczos`; `options` are the model's own (`num_steps`, `seed`, ...).

            result = await client.images.upscale("small.png", factor=4)
            result.data[0].save("large.png")
        """
        body = upscale_body(
            image=image,
            file_id=file_id,
            factor=factor,
            model=model,
            prompt=prompt,
            response_format=response_format,
            metadata=metadata,
            options=options,
            run_async=False,
        )
        response = await self._transport.request("POST", UPSCALE_PATH, json=body)
        return ImagesResponse.from_dict(data_object(response), self._transport)

    async def submit_upscale(
        self,
        image: str | Path | bytes | None = None,
        *,
        factor: int | None = None,
        model: str | None = None,
        prompt: str | None = None,
        file_id: str | None = None,
        response_format: ResponseFormat = "url",
        metadata: dict[str, MetadataValue] | None = None,
        **options: Any,
    ) -> Job:
        """Queue an upscale and return its job at once; follow it with `client.jobs`."""
        body = upscale_body(
            image=image,
            file_id=file_id,
            factor=factor,
            model=model,
            prompt=prompt,
            response_format=response_format,
            metadata=metadata,
            options=options,
            run_async=True,
        )
        response = await self._transport.request("POST", UPSCALE_PATH, json=body)
        return Job.from_dict(data_object(response), self._transport)


class AsyncJobs:
    """Jobs: status, events, cancel, wait.

    job = await client.images.submit(model="local/tiny", prompt="a boat")
    async for event in client.jobs.events(job.id):
        print(event.type, event.data)
    job = await client.jobs.wait(job.id, timeout=60)
    """

    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def list(
        self, *, after: str | None = None, before: str | None = None, **filters: Unpack[JobFilters]
    ) -> Page[Job]:
        """A page of the caller's jobs, newest first: the first, or the one `after` (older
        than) or `before` (newer than) a job id; filtered by `JobFilters`."""
        params = list_params(filters, after=after, before=before)
        response = await self._transport.request("GET", JOBS_PATH, params=params)
        return data_page(response, lambda item: Job.from_dict(item, self._transport))

    def iter(self, **filters: Unpack[JobFilters]) -> AsyncIterator[Job]:
        """Every job that matches, newest first, a page at a time (`async for`)."""
        return every_item(lambda after: self.list(after=after, **filters))

    async def delete(self, job_id: str) -> None:
        """Delete a finished job with its files; a queued or running one raises `Conflict`
        (cancel it first)."""
        await self._transport.request("DELETE", job_path(job_id))

    async def get(self, job_id: str) -> Job:
        response = await self._transport.request("GET", job_path(job_id))
        return Job.from_dict(data_object(response), self._transport)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued job now, or a running one at its next step."""
        response = await self._transport.request("POST", job_path(job_id, "cancel"))
        return Job.from_dict(data_object(response), self._transport)

    async def events(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> AsyncGenerator[JobEvent, None]:
        """The job's events until it ends; a dropped connection is resumed from the last event
        id. Leaving the loop early: wrap it in `contextlib.aclosing` to close the stream now."""
        drops = 0
        while True:
            opened = False
            try:
                async with self._transport.stream_events(
                    job_path(job_id, "events"), last_event_id=last_event_id
                ) as stream:
                    opened = True
                    async for sse in stream:
                        if sse is None:
                            continue
                        event = JobEvent.from_sse(sse, self._transport)
                        last_event_id = sse.id or last_event_id
                        drops = 0
                        yield event
                        if event.is_terminal:
                            return
            except APIConnectionError:
                if not opened or drops >= self._transport.retry.max_retries:
                    raise
            else:
                if drops >= self._transport.retry.max_retries:
                    raise APIConnectionError(f"The event stream of job {job_id} ended early")
            drops += 1
            await anyio.sleep(self._transport.retry.backoff(drops))

    async def wait(self, job_id: str, *, timeout: float | None = None) -> Job:
        """Follow the job's events and return it once it has ended. Raises
        `pixelgate.errors.Timeout` after `timeout` seconds."""
        try:
            with anyio.fail_after(timeout):
                async with aclosing(self.events(job_id)) as stream:
                    async for event in stream:
                        if event.is_terminal and event.job is not None:
                            return event.job
                return await self.get(job_id)
        except TimeoutError as exc:
            raise Timeout(
                f"Job {job_id} did not finish within {timeout} s", param="timeout"
            ) from exc


class AsyncModels:
    """The catalog the caller may use: `await client.models.list()`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def list(self, modality: str | None = "image") -> builtins.list[Model]:
        """The models, of one modality (`None`: all)."""
        params = {"modality": modality} if modality else None
        response = await self._transport.request("GET", "/v1/models", params=params)
        return [Model.from_dict(item) for item in data_list(response)]

    async def get(self, model_id: str) -> Model:
        response = await self._transport.request("GET", model_path(model_id))
        return Model.from_dict(data_object(response))


class AsyncFiles:
    """Stored results: `await client.files.get(file_id)`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def list(
        self, *, after: str | None = None, before: str | None = None, **filters: Unpack[FileFilters]
    ) -> Page[File]:
        """A page of the caller's stored results, newest first, each with a fresh link: the
        first, or the one `after` or `before` a file id; filtered by `FileFilters`."""
        params = list_params(filters, after=after, before=before)
        response = await self._transport.request("GET", FILES_PATH, params=params)
        return data_page(response, File.from_dict)

    def iter(self, **filters: Unpack[FileFilters]) -> AsyncIterator[File]:
        """Every stored result that matches, newest first, a page at a time (`async for`)."""
        return every_item(lambda after: self.list(after=after, **filters))

    async def get(self, file_id: str) -> File:
        """The file's record, with a freshly signed link."""
        response = await self._transport.request("GET", file_path(file_id))
        return File.from_dict(data_object(response))

    async def delete(self, file_id: str) -> None:
        """Delete a stored result; its links stop working at once."""
        await self._transport.request("DELETE", file_path(file_id))

    async def content(self, file_id: str) -> bytes:
        return (await self._transport.request("GET", file_path(file_id, "content"))).content
