"""Submit once, then poll: the shape every hosted provider that answers a task to wait for
shares (Black Forest Labs, fal's queue, Stability's creative upscale), and `PollingProvider`,
what those three providers are built from (a key, a base URL, an upstream client, `Polling`).

1. `Polling.start`: the provider's task for one request of a job. One an earlier attempt of the
   job noted (a retry, a restart) is resumed and never sent again; otherwise the request is sent
   at most once per job (`upstream.send_once`), its answer read into the provider's own handle
   (a polling URL, a queued request, a result id), and the task noted with the job, with the
   time its window closes, before anything waits for it.
2. `Polling.until`: ask the provider about the task until it is finished, waiting the interval
   between two questions; a cancel ends the wait at once (`Canceled`), and past the window the
   task is a `ProviderTimeout` (it is the provider's now, maybe billed: never sent again).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Self, TypeVar

from pydantic import SecretStr

from pixelgate.catalog import ModelSpec
from pixelgate.errors import ProviderTimeout
from pixelgate.providers.base import CancelToken, ImageTask, UpstreamTask
from pixelgate.providers.keys import ProviderKey
from pixelgate.providers.registry import Backend
from pixelgate.providers.retries import wait
from pixelgate.providers.upstream import UpstreamClient, UpstreamResponse, send_once
from pixelgate.settings import Settings

Handle = TypeVar("Handle")
Done = TypeVar("Done")


@dataclass(frozen=True)
class Polling:
    """How a provider waits for its tasks."""

    interval: float
    """Seconds between two questions about a task."""
    timeout: float
    """Seconds from a task's submission until it is given up (`ProviderTimeout`)."""

    def start(
        self,
        provider: str,
        task: ImageTask,
        *,
        send: Callable[[], UpstreamResponse],
        accept: Callable[[UpstreamResponse], tuple[Handle, UpstreamTask]],
        resume: Callable[[UpstreamTask], Handle | None],
        index: int = 0,
    ) -> tuple[Handle, float]:
        """The provider's task for the job's request `index`, and when its window closes
        (seconds since the epoch). `resume` reads a task an earlier attempt noted (None: that
        attempt never learned of one); otherwise `send()` goes, at most once per job, and
        `accept` reads its answer: the handle to poll, and the note to keep with the job."""
        earlier = task.upstream.earlier_of(index)
        if earlier is not None:
            resumed = resume(earlier)
            if resumed is not None:
                return resumed, earlier.deadline or time.time()
        handle, note = accept(send_once(provider, task, send, index=index))
        deadline = time.time() + self.timeout
        task.upstream.note(replace(note, deadline=deadline), index=index)
        return handle, deadline

    def until(
        self,
        check: Callable[[], Done | None],
        *,
        deadline: float,
        cancel: CancelToken,
        timeout_message: str = "Image generation timed out",
    ) -> Done:
        """What `check()` answers once the task is finished (None: not yet; it raises for a
        failed task), asked every `interval` seconds until `deadline` (seconds since the
        epoch)."""
        while True:
            done = check()
            if done is not None:
                return done
            left = deadline - time.time()
            if left <= 0:
                raise ProviderTimeout(timeout_message)
            wait(min(self.interval, left), cancel)


class PollingProvider(ABC):
    """A hosted provider that submits tasks and polls them, on the operator's key or a tenant's
    own: its key, base URL, upstream client and `Polling`, made from its backend's settings
    (`api_key`, `base_url`, `poll_interval_seconds`, `poll_timeout_seconds`)."""

    name: str
    takes_own_keys = True
    """A tenant's own key may replace the operator's (see `TakesOwnKeys`)."""

    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        base_url: str,
        http: UpstreamClient,
        poll_interval_seconds: float,
        poll_timeout_seconds: float,
    ) -> None:
        self._key = ProviderKey(self.name, api_key, self.backend().variable("api_key"))
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._polling = Polling(interval=poll_interval_seconds, timeout=poll_timeout_seconds)

    @classmethod
    @abstractmethod
    def backend(cls) -> Backend[Any]:
        """The provider's backend (its module's `BACKEND`)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        own = cls.backend().settings_of(settings)
        return cls(
            api_key=own.api_key,
            base_url=own.base_url,
            http=UpstreamClient.from_settings(cls.name, settings, base_url=own.base_url),
            poll_interval_seconds=own.poll_interval_seconds,
            poll_timeout_seconds=own.poll_timeout_seconds,
        )

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        return self._key.missing()

    def own_key_problem(self, spec: ModelSpec) -> str | None:
        return None  # a key is all a request needs

    def _submit_json(
        self,
        task: ImageTask,
        url: str,
        body: dict[str, Any],
        *,
        headers: dict[str, str],
        cancel: CancelToken,
        accept: Callable[[UpstreamResponse], tuple[Handle, UpstreamTask]],
        resume: Callable[[UpstreamTask], Handle | None],
        index: int = 0,
    ) -> tuple[Handle, float]:
        """`Polling.start` with a JSON `POST` of `body` to `url` as the request."""
        return self._polling.start(
            self.name,
            task,
            send=lambda: self._http.send(
                "POST", url, cancel=cancel, headers=headers, json_body=body
            ),
            accept=accept,
            resume=resume,
            index=index,
        )
