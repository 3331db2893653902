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


def make_batch_invariant(pipeline: Any, device: str) -> None:
    """Make an image's result independent of the batch it runs in, so a batched job gets the
    bytes it would get alone.

    Three things vary with the batch size on CPU: oneDNN's convolution kernels (a batch of one
    takes another path), the BLAS kernel for a linear layer over a few rows (timestep and
    conditioning embeddings: one row per image), and the VAE over a batch. So on CPU oneDNN is
    switched off (convolutions ~15% slower), such linear layers run row by row (they are tiny),
    and the VAE works one image at a time (its cost is per image anyway). On CUDA, cuBLAS may
    still pick other kernels per batch size; results stay reproducible for the same batch."""
    import torch

    if device == "cpu":
        torch.backends.mkldnn.enabled = False
    vae = getattr(pipeline, "vae", None)
    if vae is not None and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()
    for name in ("unet", "transformer"):
        denoiser = getattr(pipeline, name, None)
        if denoiser is None:
            continue
        for module in denoiser.modules():
            if isinstance(module, torch.nn.Linear):
                module.forward = _row_by_row(module.forward)


def _row_by_row(forward: Any) -> Any:
    import torch

    def rows(inputs: Any) -> Any:
        if inputs.dim() == 2 and inputs.shape[0] > 1:
            return torch.cat([forward(inputs[index : index + 1]) for index in range(len(inputs))])
        return forward(inputs)

    return rows
