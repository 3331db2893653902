"""The model worker process: hosts the local diffusers models for one API (or cluster worker)
process, so that a crash, an out-of-memory kill or memory that model code never gives back
costs this process, not the service.

    python -m pixelgate.engine.model_host FD

FD is this end of a connected Unix socket (see `model_messages.Channel`). The heavy imports
happen first, before the first message is read, so they overlap the API process's own start.
Each `Run` gets a thread of its own, so that concurrent jobs meet in the provider's batcher and
share pipeline calls exactly as they did in one process. When the API process goes away, the
socket closes and this process exits.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelgate.engine.model_messages import (
    Cancel,
    Channel,
    Configure,
    Done,
    Loaded,
    Preload,
    Progress,
    Ready,
    Run,
    Shutdown,
    WireError,
)
from pixelgate.errors import Error
from pixelgate.logs import configure_logging
from pixelgate.providers.base import CancelToken, ProgressWithPreviews, StepPreview
from pixelgate.providers.local_diffusion import LocalDiffusionProvider
from pixelgate.startup import no_collection_while_importing

log = logging.getLogger("pixelgate.model_host")


def main(fd: int) -> None:
    channel = Channel(socket.socket(fileno=fd))
    with no_collection_while_importing():
        import_heavy_libraries()
    configure = channel.receive()
    if not isinstance(configure, Configure):
        os._exit(0)  # the API process went away before it said anything
    config = configure.config
    configure_logging(config.log_level)
    provider = LocalDiffusionProvider(
        Path(config.models_dir),
        device=config.device,
        torch_threads=config.torch_threads,
        memory_budget_bytes=config.memory_budget_bytes,
        vram_budget_bytes=config.vram_budget_bytes,
        max_batch_size=config.max_batch_size,
        batch_window_seconds=config.batch_window_seconds,
        torch_compile=config.torch_compile,
    )
    host = _Host(channel, provider)
    channel.send(Ready(os.getpid()))
    host.serve()
    # skip the interpreter's teardown: torch's threads and jobs still running are not ours to
    # wait for, the API process has let go of them
    os._exit(0)


def import_heavy_libraries() -> None:
    """torch and the diffusers pipeline classes, once, before any work (about 4 s on 2 cores)."""
    import diffusers
    import torch  # noqa: F401
    import transformers
    from diffusers import DiffusionPipeline  # noqa: F401

    # loading bars are for terminals; this process's output goes to the server's log
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


class _Host:
    def __init__(self, channel: Channel, provider: LocalDiffusionProvider) -> None:
        self._channel = channel
        self._provider = provider
        self._tokens: dict[int, CancelToken] = {}
        self._lock = threading.Lock()

    def serve(self) -> None:
        """Read messages until `Shutdown` or the API process goes away."""
        while True:
            message = self._channel.receive()
            if message is None or isinstance(message, Shutdown):
                return
            if isinstance(message, Run):
                token = CancelToken()
                with self._lock:
                    self._tokens[message.request_id] = token
                self._start(self._run, message, token)
            elif isinstance(message, Cancel):
                with self._lock:
                    found = self._tokens.get(message.request_id)
                if found is not None:
                    found.cancel()
            elif isinstance(message, Preload):
                self._start(self._preload, message)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        threading.Thread(target=target, args=args, daemon=True).start()

    def _run(self, message: Run, token: CancelToken) -> None:
        request_id = message.request_id

        def progress(step: int, total: int) -> None:
            self._send(Progress(request_id, step, total))

        def preview(step: int, total: int, picture: StepPreview) -> None:
            self._send(Progress(request_id, step, total, picture))

        reporter = ProgressWithPreviews(progress, preview) if message.previews else progress
        images = None
        error = None
        try:
            images = self._provider.run(
                message.spec, message.task, progress=reporter, cancel=token, alone=message.alone
            )
        except Exception as exc:
            if not isinstance(exc, Error):
                log.exception("model code failed on request %d", request_id)
            error = WireError.of(exc)
        finally:
            with self._lock:
                self._tokens.pop(request_id, None)
        self._send(Done(request_id, images, error, resident_bytes()))

    def _preload(self, message: Preload) -> None:
        spec = message.spec
        try:
            self._provider.preload([spec])
            if message.warm_up is not None:
                self._provider.run(
                    spec, message.warm_up, progress=lambda _step, _total: None, cancel=CancelToken()
                )
        except Exception as exc:
            log.exception("preloading %s failed", spec.id)
            self._send(Loaded(spec.id, error=f"{type(exc).__name__}: {exc}"))
            return
        self._send(Loaded(spec.id))

    def _send(self, message: Done | Loaded | Progress) -> None:
        try:
            self._channel.send(message)
        except OSError:
            os._exit(0)  # the API process is gone: nobody is left to answer


def resident_bytes() -> int:
    """This process's resident memory (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


if __name__ == "__main__":
    main(int(sys.argv[1]))
