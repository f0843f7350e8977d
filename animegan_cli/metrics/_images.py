"""The images every metric takes: uint8 NHWC sets, as everywhere else in animegan."""

from __future__ import annotations

import numpy as np
import torch

Images = np.ndarray | torch.Tensor  # uint8 (N, H, W, 3)


def uint8_nhwc(images: Images, what: str) -> torch.Tensor:
    """`images` as a uint8 (N, H, W, 3) tensor sharing memory where it can; else ValueError."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ValueError(f"{what} must be uint8, got {images.dtype}")
        # torch cannot share a read-only buffer; copy those (and non-contiguous views).
        images = torch.from_numpy(np.require(images, requirements=["C", "W"]))
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{what} must be uint8 images (N, H, W, 3), got "
                         f"{tuple(images.shape)} {images.dtype}")
    return images
