"""Local models in a worker process of their own, as Cog's worker keeps them.

`ModelProcess` is the `diffusers` provider as the rest of pixelgate sees it: `run` hands the
task to a child process (`model_host`) and waits for its images, passing on progress and
cancel. The child holds the models, their batcher and their memory, so:

- a segfault or an out-of-memory kill in model code ends the child, not the API: every job it
  was running fails with `WorkerCrashed`, which the executor retries under the usual attempt
  rules, and a new child starts at once and loads the preloaded models again;
- the child is recycled (stopped once idle, and replaced) after `max_jobs` jobs or when its
  resident memory passes `max_memory_bytes`, so memory that model code keeps is returned;
- the heavy imports (torch, diffusers) happen in the child, started as early as possible, so
  the API process starts in about a second and answers while models load.

Requests wait while a child is being replaced; they never run on two children at once, so two
copies of the models are never resident together.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pixelgate.catalog import ModelSpec
from pixelgate.engine.model_launch import HeadStart, start_host
from pixelgate.engine.model_messages import (
    Cancel,
    Channel,
    Configure,
    Done,
    EngineConfig,
    Loaded,
    Preload,
    Progress,
    Ready,
    Run,
    Shutdown,
)
from pixelgate.errors import ServiceUnavailable, WorkerCrashed
from pixelgate.providers.base import (
    CancelToken,
    GeneratedImage,
    ImageTask,
    PreviewCallback,
    ProgressCallback,
    UpstreamState,
    previews_of,
)
from pixelgate.providers.local_diffusion import unavailable_reason

if TYPE_CHECKING:
    from pixelgate.settings import Settings

__all__ = ["ModelProcess"]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 0.1
"""How often a waiting request looks at its cancel flag."""
STOP_GRACE_SECONDS = 10.0
"""How long an idle child may take to exit after `Shutdown` before it is killed."""
MAX_FAILED_STARTS = 3
"""Children in a row that may die before loading their models before restarts stop."""
MB = 2**20


@dataclass(frozen=True)
class _Stopped:
    """Put in a request's inbox when its child ended before answering."""

    reason: str


@dataclass(eq=False)
class _Pending:
    """A request sent to a child: where its answer goes, and whom its progress is told."""

    inbox: queue.SimpleQueue[Done | _Stopped]
    progress: ProgressCallback
    preview: PreviewCallback | None


@dataclass(eq=False)
class _Child:
    process: subprocess.Popen[bytes]
    channel: Channel
    pending: dict[int, _Pending] = field(default_factory=dict)
    alive: bool = True
    retiring: bool = False
    """Due for recycling: takes no new work, and is replaced once its last job ends."""
    jobs_done: int = 0
    rss_bytes: int = 0
    loaded_any: bool = False
    """Whether a preload succeeded in it: a child that dies before is counted as a failed start."""


class ModelProcess:
    """The local diffusers provider, run in a child process (see the module's docstring)."""

    name = "diffusers"

    def __init__(
        self,
        config: EngineConfig,
        *,
        max_jobs: int | None = None,
        max_memory_bytes: int | None = None,
    ) -> None:
        self.config = config
        self.max_jobs = max_jobs
        self.max_memory_bytes = max_memory_bytes
        self._cond = threading.Condition()
        self._child: _Child | None = None
        self._replacing = False
        self._stopping = False
        self._ids = itertools.count(1)
        self._preloads: list[tuple[ModelSpec, ImageTask | None]] = []
        self._loaded: dict[str, str | None] = {}
        """Preloaded model id → None when loaded and warm, else what is wrong (or loading)."""
        self._failed_starts = 0
        """Children in a row that died before loading their preloaded models."""
        self.more_on_the_way: Callable[[str], bool] = lambda _model: True
        """Whether another job for a model may follow the one being sent within a batch window
        (set by the runtime, which sees the requests and the queue); when not, the model's
        batcher runs the job without waiting for companions."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelProcess:
        config = EngineConfig(
            models_dir=str(settings.resolved_models_dir),
            device=settings.device,
            torch_threads=settings.torch_threads,
            memory_budget_bytes=_bytes(settings.model_memory_budget_mb),
            vram_budget_bytes=_bytes(settings.model_vram_budget_mb),
            max_batch_size=settings.max_batch_size,
            batch_window_seconds=settings.batch_window_ms / 1000,
            torch_compile=settings.torch_compile,
            log_level=settings.log_level,
        )
        return cls(
            config,
            max_jobs=settings.model_worker_max_jobs,
            max_memory_bytes=_bytes(settings.model_worker_max_memory_mb),
        )

    # -- the provider interface -----------------------------------------------------------

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        return unavailable_reason(Path(self.config.models_dir), spec)

    def run(
        self,
        spec: ModelSpec,
        task: ImageTask,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        request_id = next(self._ids)
        inbox: queue.SimpleQueue[Done | _Stopped] = queue.SimpleQueue()
        with self._cond:
            child = self._current()
            preview = previews_of(progress)
            child.pending[request_id] = _Pending(inbox, progress, preview)
        try:
            # a local model sends nothing upstream; the job's note-taker stays in this process
            alone = not self.more_on_the_way(spec.id)
            local_task = replace(task, upstream=UpstreamState())
            self._send(child, Run(request_id, spec, local_task, alone, preview is not None))
            return self._wait(child, request_id, inbox, cancel)
        finally:
            with self._cond:
                child.pending.pop(request_id, None)
                self._recycle_if_due(child)
                self._cond.notify_all()

    # -- life -----------------------------------------------------------------------------

    def launch(self, head_start: HeadStart | None = None) -> None:
        """Start the child now (it imports torch and diffusers meanwhile), or adopt
        `head_start`, a child started earlier still; idempotent (a head start not needed is
        ended)."""
        with self._cond:
            if self._child is None and not self._stopping:
                self._child = self._spawn(head_start)
                return
        if head_start is not None:
            head_start.cancel()

    def preload(self, specs: Sequence[tuple[ModelSpec, ImageTask | None]], *, wait: bool) -> None:
        """Load these models in the child, each warmed up with its task when one is given,
        now and after every restart. With `wait`, return once all are loaded; raises
        `ServiceUnavailable` naming a model that failed. With none, no child starts yet: the
        first job starts one."""
        if not specs:
            return
        with self._cond:
            child = self._current()  # a child started from now on gets them with the rest
            self._preloads.extend(specs)
            for spec, _ in specs:
                self._loaded[spec.id] = "loading"
        for spec, warm_up in specs:
            self._send(child, Preload(spec, warm_up))
        if wait:
            with self._cond:
                while any(state == "loading" for state in self._loaded.values()):
                    self._cond.wait()
                failed = {key: state for key, state in self._loaded.items() if state is not None}
            if failed:
                raise ServiceUnavailable(f"Preloading failed: {failed}")

    def readiness(self) -> str:
        """How the preloaded models are: "ok" once all are loaded and warm; else which are
        still loading, or which failed and why."""
        with self._cond:
            states = sorted(self._loaded.items())
        failed = [f"{key}: {state}" for key, state in states if state not in (None, "loading")]
        if failed:
            return "failed: " + "; ".join(failed)
        waiting = [key for key, state in states if state == "loading"]
        if waiting:
            return "loading " + ", ".join(waiting)
        return "ok"

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            child, self._child = self._child, None
            self._cond.notify_all()
        if child is not None:
            self._shut_down(child)

    # -- inside -----------------------------------------------------------------------------

    def _current(self) -> _Child:
        """Holding the lock: the child that takes new work, started if there is none; waits
        while one is being replaced."""
        while True:
            if self._stopping:
                raise ServiceUnavailable("The server is shutting down")
            child = self._child
            if child is not None and not child.retiring and not self._replacing:
                return child
            if child is None and not self._replacing:
                self._child = self._spawn()
                continue
            self._cond.wait(1.0)

    def _spawn(self, head_start: HeadStart | None = None) -> _Child:
        """Holding the lock: start a child, or adopt one already started (it loads the
        preloaded models again)."""
        started = head_start or start_host()
        process = started.process
        child = _Child(process, Channel(started.socket))
        child.channel.send(Configure(self.config))
        for spec, warm_up in self._preloads:
            self._loaded[spec.id] = "loading"
            child.channel.send(Preload(spec, warm_up))
        threading.Thread(
            target=self._read, args=(child,), name=f"model-process-{process.pid}", daemon=True
        ).start()
        log.info("model worker process %d started", process.pid)
        return child

    def _read(self, child: _Child) -> None:
        """The child's messages, each to whom it concerns, until it ends."""
        while (message := child.channel.receive()) is not None:
            if isinstance(message, Progress | Done):
                with self._cond:
                    pending = child.pending.get(message.request_id)
                if pending is None:
                    continue
                if isinstance(message, Progress):
                    # told from here: waking the request's thread at every step would take a
                    # core from the model, which runs on all of them
                    if message.preview is not None and pending.preview is not None:
                        pending.preview(message.step, message.total, message.preview)
                    else:
                        pending.progress(message.step, message.total)
                else:
                    pending.inbox.put(message)
            elif isinstance(message, Loaded):
                with self._cond:
                    self._loaded[message.model_id] = message.error
                    if message.error is None:
                        child.loaded_any = True
                        self._failed_starts = 0
                    self._cond.notify_all()
            elif isinstance(message, Ready):
                log.info("model worker process %d ready", message.pid)
        self._ended(child)

    def _ended(self, child: _Child) -> None:
        """The child's channel closed: fail what it was running, and replace it unless it was
        meant to stop."""
        child.channel.close()
        returncode = child.process.wait()
        reason = _describe_exit(returncode)
        with self._cond:
            child.alive = False
            for pending in child.pending.values():
                pending.inbox.put(_Stopped(reason))
            unexpected = not child.retiring and not self._stopping
            if self._child is child:
                self._child = None
            if unexpected and self._preloads and not child.loaded_any:
                self._failed_starts += 1
            if unexpected and self._failed_starts >= MAX_FAILED_STARTS:
                # it dies while loading: leave the next start to the next request
                log.error(
                    "model worker process %d stopped (%s) %d times while loading; not "
                    "starting another until a request needs one",
                    child.process.pid,
                    reason,
                    self._failed_starts,
                )
                for spec, _ in self._preloads:
                    self._loaded[spec.id] = f"the model worker process stopped ({reason})"
            elif unexpected:
                log.error(
                    "model worker process %d stopped (%s); starting another",
                    child.process.pid,
                    reason,
                )
                self._child = self._spawn()
            self._cond.notify_all()

    def _wait(
        self,
        child: _Child,
        request_id: int,
        inbox: queue.SimpleQueue[Done | _Stopped],
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        """The request's answer; a cancel is passed on once."""
        cancel_sent = False
        while True:
            try:
                message = inbox.get(timeout=HEARTBEAT_SECONDS)
            except queue.Empty:
                if cancel.canceled and not cancel_sent:
                    cancel_sent = True
                    self._send(child, Cancel(request_id))
                continue
            if isinstance(message, _Stopped):
                raise WorkerCrashed(
                    f"The model worker process stopped ({message.reason}) while running this "
                    "job; it was restarted"
                )
            else:
                with self._cond:
                    child.jobs_done += 1
                    child.rss_bytes = message.rss_bytes
                if message.error is not None:
                    raise message.error.exception()
                assert message.images is not None
                return message.images

    def _send(self, child: _Child, message: Run | Cancel | Preload) -> None:
        # when the child is gone, its reader delivers `_Stopped` to every waiting request
        with contextlib.suppress(OSError):
            child.channel.send(message)

    def _recycle_if_due(self, child: _Child) -> None:
        """Holding the lock: retire a child past its job count or memory ceiling, and replace it
        once its last job has ended."""
        if not child.alive or self._stopping:
            return
        if not child.retiring:
            too_many = self.max_jobs is not None and child.jobs_done >= self.max_jobs
            too_big = self.max_memory_bytes is not None and child.rss_bytes > self.max_memory_bytes
            if not (too_many or too_big):
                return
            child.retiring = True
            log.info(
                "recycling model worker process %d after %d jobs at %.0f MB",
                child.process.pid,
                child.jobs_done,
                child.rss_bytes / MB,
            )
        if child.pending or self._replacing:
            return
        self._replacing = True
        threading.Thread(target=self._replace, args=(child,), daemon=True).start()

    def _replace(self, old: _Child) -> None:
        """Stop an idle retired child, then start its successor (never both at once)."""
        self._shut_down(old)
        with self._cond:
            if self._child is old:
                self._child = None
            if not self._stopping:
                self._child = self._spawn()
            self._replacing = False
            self._cond.notify_all()

    def _shut_down(self, child: _Child) -> None:
        if not child.pending:
            # nothing to finish, and its memory is all it holds: no wait for its imports (it
            # reads `Shutdown` only after them, seconds after a start)
            child.process.kill()
            child.process.wait()
            return
        with contextlib.suppress(OSError):
            child.channel.send(Shutdown())
        try:
            child.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _bytes(megabytes: int | None) -> int | None:
    return None if megabytes is None else megabytes * MB
