"""`pixelgate/lanczos`: upscaling by Lanczos resampling (Pillow), with no model at all. It works
offline on any install, takes milliseconds, keeps transparency, and invents no detail."""

from __future__ import annotations

import io

from PIL import Image

from pixelgate.catalog import ModelSpec
from pixelgate.errors import Canceled, MustProvideFile, ValidationError
from pixelgate.imaging import CONTENT_TYPES, encode_image
from pixelgate.providers.base import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.providers.registry import Backend, NoSettings
from pixelgate.settings import Settings

PROVIDER = "lanczos"
KEEPS_ALPHA = frozenset({"png", "webp"})


class LanczosProvider:
    name = PROVIDER

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        return None

    def run(
        self,
        spec: ModelSpec,
        task: ImageTask,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        # 1. the input and the factor, checked by the service already
        task.require_support(spec)
        factor = getattr(task.options, "factor", None)
        if task.image is None:
            raise MustProvideFile("Upscaling needs an input image", param="image")
        if not isinstance(factor, int) or factor < 1:
            raise ValidationError(f"Model {spec.id!r} needs a factor", param="factor")
        progress(0, 1)
        # 2. the resampling, in the mode the output format can keep
        fmt = task.options.output_format_value
        with Image.open(io.BytesIO(task.image.data)) as picture:
            picture.load()
            has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            mode = "RGBA" if has_alpha and fmt in KEEPS_ALPHA else "RGB"
            source = picture.convert(mode)
        if cancel.canceled:
            raise Canceled("Job canceled")
        size = (source.width * factor, source.height * factor)
        enlarged = source.resize(size, Image.Resampling.LANCZOS)
        # 3. the file
        data = encode_image(enlarged, fmt)
        progress(1, 1)
        return [
            GeneratedImage(
                data=data, content_type=CONTENT_TYPES[fmt], width=size[0], height=size[1]
            )
        ]


def _from_settings(settings: Settings) -> LanczosProvider:
    return LanczosProvider()


BACKEND = Backend(PROVIDER, NoSettings, _from_settings)
