"""Run `aquiles-image serve ...` on a CPU-only Linux machine without editing the installed
package (a copy of `/work/shared/peers/aquiles_cpu.py`, laid out to this repository's lint).

aquiles-image 0.8.3 hard-codes CUDA (or MPS) in two places:

- `aquilesimage/pipelines/pipelines.py`, `ModelPipelineInit.__init__`: `self.device = "cuda"
  if cuda else "mps"`, so `batch_inf.py` makes `torch.Generator(device="mps")`, which fails on
  Linux;
- `aquilesimage/pipelines/image/auto/text2img.py`, `AutoPipelineDiffusers.start()`: loads only
  `if torch.cuda.is_available()`, so the pipeline stays None on a CPU.

This shim replaces both at run time (no change in speed), then hands argv to the normal command
line. Run it with the Python of Aquiles-Image's own venv, never pixelgate's.
"""

import gc
import os
import sys
from typing import Any

import aquilesimage.pipelines.pipelines as _pipelines  # type: ignore[import-not-found]
import torch
from aquilesimage.cli.cli import app  # type: ignore[import-not-found]
from aquilesimage.pipelines.image.auto import text2img  # type: ignore[import-not-found]
from aquilesimage.runtime import loadLoRA  # type: ignore[import-not-found]
from diffusers.pipelines.auto_pipeline import AutoPipelineForText2Image

_original_init = _pipelines.ModelPipelineInit.__init__


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.device = "cpu"


def _start(self: Any) -> None:
    # as the CUDA branch upstream, without device_map="cuda" and bfloat16
    dtype = getattr(torch, os.environ.get("AQ_CPU_DTYPE", "float32"))
    self.pipeline = AutoPipelineForText2Image.from_pretrained(self.model_name, dtype=dtype)
    self.pipeline.set_progress_bar_config(disable=True)
    if self.load_lora:
        loadLoRA(self.pipeline, self.conf_lora)
    if os.environ.get("AQ_CPU_SKIP_OPT") != "1":
        self.optimization()  # channels_last and fuse_qkv_projections, as upstream
    if os.environ.get("AQ_GC_FREEZE") == "1":
        gc.collect()  # optional: makes the gc.collect() after each request cheap
        gc.freeze()


_pipelines.ModelPipelineInit.__init__ = _init
text2img.AutoPipelineDiffusers.start = _start

if __name__ == "__main__":
    sys.argv = ["aquiles-image", *sys.argv[1:]]
    app()
