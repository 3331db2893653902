"""What the API process and its model worker process say to each other, and the channel they
say it over.

The API process sends `Configure` once, then `Preload`, `Run`, `Cancel` and `Shutdown`; the
worker answers `Ready`, `Loaded`, `Progress` and `Done`. Each message is a small frozen
dataclass, pickled (protocol 5) behind an 8-byte length on a Unix socket. An image crosses as
its encoded bytes, inside the `Done` that carries it: the worker encodes it once (it has to, to
be stored), and it is copied once on the way (see `Channel`).
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Any, Literal

from pixelgate.catalog import ModelSpec
from pixelgate.errors import Error, error_from_code
from pixelgate.providers.base import GeneratedImage, ImageInput, ImageTask, StepPreview

_HEADER = struct.Struct("!QI")
"""A frame's pickle length and its number of out-of-band buffers."""
_LENGTH = struct.Struct("!Q")


# -- the API process to the worker ----------------------------------------------------------


@dataclass(frozen=True)
class EngineConfig:
    """How the worker builds its `LocalDiffusionProvider` (from the server's settings)."""

    models_dir: str
    device: str
    torch_threads: int | None
    memory_budget_bytes: int | None
    vram_budget_bytes: int | None
    max_batch_size: int
    batch_window_seconds: float
    torch_compile: bool
    log_level: str


@dataclass(frozen=True)
class Configure:
    config: EngineConfig


@dataclass(frozen=True)
class Preload:
    """Load `spec` now, then run `warm_up` once (if given) so the first real call pays no
    first-call costs."""

    spec: ModelSpec
    warm_up: ImageTask | None


@dataclass(frozen=True)
class Run:
    request_id: int
    spec: ModelSpec
    task: ImageTask
    alone: bool = False
    """No other job for the model is on its way: the batcher need not wait for companions."""
    previews: bool = False
    """Whoever follows the job shows previews of its steps: send them with its progress."""


@dataclass(frozen=True)
class Cancel:
    request_id: int


@dataclass(frozen=True)
class Shutdown:
    """Finish nothing more and exit (the API process only sends it to an idle worker)."""


# -- the worker to the API process ----------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """Imports done and configured: the worker takes work now."""

    pid: int


@dataclass(frozen=True)
class Loaded:
    model_id: str
    error: str | None = None
    """Why the model could not be loaded or warmed up; None when it is ready."""


@dataclass(frozen=True)
class Progress:
    request_id: int
    step: int
    total: int
    preview: StepPreview | None = None
    """A few kilobytes at most, so it travels inside the pickle."""


@dataclass(frozen=True)
class WireError:
    """An exception raised by model code, as it crosses the process boundary."""

    kind: Literal["error", "transient"]
    """`error`: a `pixelgate.errors.Error` (its code says which); `transient`: an I/O or
    memory failure worth another try."""
    code: str
    message: str
    param: str | None = None

    @classmethod
    def of(cls, exc: BaseException) -> WireError:
        if isinstance(exc, Error):
            return cls("error", exc.code, exc.message, exc.param)
        if isinstance(exc, OSError | MemoryError):
            return cls("transient", type(exc).__name__, str(exc))
        message = f"Internal error while running the job: {type(exc).__name__}: {exc}"
        return cls("error", "INTERNAL_ERROR", message)

    def exception(self) -> Exception:
        """The exception to raise again on this side."""
        if self.kind == "transient":
            return OSError(f"{self.code} in the model worker: {self.message}")
        return error_from_code(self.code, self.message, param=self.param)


@dataclass(frozen=True)
class Done:
    request_id: int
    images: list[GeneratedImage] | None
    error: WireError | None
    rss_bytes: int
    """The worker's resident memory after this job, for recycling past a ceiling."""


Message = (
    Configure | Preload | Run | Cancel | Shutdown | Ready | Loaded | Progress | Done
)  # fmt: skip


class Channel:
    """Messages over a connected stream socket: whole messages in, whole messages out. Any
    thread may send (one at a time); one thread receives.

    A frame is a header (the pickle's length and each out-of-band buffer's), the pickle, then
    the buffers. Image bytes travel as out-of-band buffers: sent from the object itself and read
    straight into the bytes object the receiver keeps, so they are copied once, by the kernel."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._send_lock = threading.Lock()

    def send(self, message: Message) -> None:
        """Raises `OSError` (`BrokenPipeError`) when the other side has gone."""
        buffers: list[pickle.PickleBuffer] = []
        stream = io.BytesIO()
        _ImagePickler(stream, protocol=5, buffer_callback=buffers.append).dump(message)
        payload = stream.getbuffer()
        views = [buffer.raw() for buffer in buffers]
        header = _HEADER.pack(len(payload), len(views))
        header += b"".join(_LENGTH.pack(view.nbytes) for view in views)
        with self._send_lock:
            self._sock.sendall(header)
            self._sock.sendall(payload)
            for view in views:
                self._sock.sendall(view)

    def receive(self) -> Message | None:
        """The next message; None once the other side has closed or died."""
        try:
            header = self._read(_HEADER.size)
            length, count = _HEADER.unpack(header)
            sizes = [_LENGTH.unpack(self._read(_LENGTH.size))[0] for _ in range(count)]
            payload = self._read(length)
            buffers = [self._read(size) for size in sizes]
        except (OSError, EOFError):
            return None
        message: Message = pickle.loads(payload, buffers=buffers)
        return message

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def _read(self, size: int) -> bytes:
        data = self._reader.read(size)
        if len(data) < size:
            raise EOFError("the other side closed the channel")
        return data


class _ImagePickler(pickle.Pickler):
    """Pickles image bytes out of band (see `Channel`); everything else as usual."""

    def reducer_override(self, obj: object) -> Any:
        if isinstance(obj, GeneratedImage | ImageInput):
            values = [
                pickle.PickleBuffer(obj.data) if field.name == "data" else getattr(obj, field.name)
                for field in dataclasses.fields(obj)
            ]
            return type(obj), tuple(values)
        return NotImplemented
