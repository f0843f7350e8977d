"""Where tensors live and in what precision: device choice, precision choice, and the one
conversion from network output to image bytes.

The choice lists are plain tuples and torch is imported inside the functions, so the CLI can
list the choices in its help without importing torch (about 2 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

from animegan_cli.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import torch

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
DEVICES: tuple[str, ...] = get_args(Device)
PRECISIONS: tuple[str, ...] = get_args(Precision)


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for a --device choice; `auto` prefers CUDA, then MPS, then the CPU."""
    import torch

    if name not in DEVICES:
        raise UserError(f"--device {name!r} is not one of: {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is available; "
                            "use --device auto or --device cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but MPS is not available; use --device auto")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """The precision a --precision choice means on `device`: fp32, bf16 or fp16."""
    import torch

    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        # bf16 autocast on a CPU with native bf16 trains 1.6-2.3x the images per CPU-second of
        # fp32 and scored within fp32's seed-to-seed spread at equal images (docs/quality.md);
        # where bf16 is emulated it is slower than fp32, so only there is it left to --precision.
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if name == "fp16" and device.type == "cpu":
        raise UserError("--precision fp16 is for GPUs; use fp32 (or auto), or bf16 on a CPU "
                        "with native bf16 support")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("this GPU has no bf16 support; use --precision fp16 or fp32")
    return name


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16, or AMX tiles), as oneDNN uses."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch >= 2.1
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision; None for fp32 (no autocast)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW float -> uint8 NHWC, the layout every image writer here takes."""
    import torch

    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
