"""Device, dtype and memory choices for local pipelines."""

from __future__ import annotations

from typing import Any

LARGE_IMAGE_PIXELS = 1536 * 1536
"""At or above this many pixels per image the VAE decodes in tiles on CPU and MPS."""
CUDA_HEADROOM_BYTES = 3 * 2**30
"""Free VRAM below which attention is sliced and the VAE tiled on CUDA."""


def pick_device(setting: str) -> tuple[str, Any]:
    """The device and dtype to run on: bf16 (else fp16) on CUDA, fp16 on MPS, fp32 on CPU."""
    import torch

    device = setting
    if setting == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device == "cuda":
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return device, torch.float16
    return device, torch.float32


def pipeline_bytes(pipeline: Any) -> int:
    """Bytes of every weight and buffer of a pipeline's torch modules."""
    import torch

    total = 0
    for component in pipeline.components.values():
        if isinstance(component, torch.nn.Module):
            for tensor in (*component.parameters(), *component.buffers()):
                total += tensor.numel() * tensor.element_size()
    return total


def fit_memory(pipeline: Any, device: str, *, pixels: int, images: int) -> None:
    """Slice attention and tile the VAE when memory is short for this call; undo otherwise.

    The pipelines of one model share these modules, so the choice is made before each call."""
    short = False
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        short = free < CUDA_HEADROOM_BYTES * max(1, pixels * images // (1024 * 1024))
    elif pixels >= LARGE_IMAGE_PIXELS:
        short = True
    vae = getattr(pipeline, "vae", None)
    shared = vae if vae is not None else pipeline  # the flag lives on a shared module
    if getattr(shared, "_pixelgate_short_of_memory", False) == short:
        return
    shared._pixelgate_short_of_memory = short
    if vae is not None and hasattr(vae, "enable_tiling"):
        if short:
            vae.enable_tiling()
        else:
            vae.disable_tiling()
    if device == "cuda" and hasattr(pipeline, "enable_attention_slicing"):
        if short:
            pipeline.enable_attention_slicing()
        else:
            pipeline.disable_attention_slicing()
