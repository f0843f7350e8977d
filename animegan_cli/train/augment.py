"""DiffAugment (Zhao et al. 2020): the same differentiable augmentations on real and fake
images before D, so D cannot memorise a small dataset and G still gets useful gradients.

Policy: colour (brightness, saturation, contrast), translation (1/8 of the side, zero
padded) and cutout (a square of half the side). All randomness comes from the caller's
generator, so training stays reproducible and resumes exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def diff_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return _cutout(_translate(_colour(x, gen), gen), gen)


def flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch horizontally (the --mirror dataset augmentation)."""
    mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=gen) < 0.5
    return torch.where(mask, x.flip(3), x)


def _rand(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=gen, dtype=x.dtype)


def _colour(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    x = x + (_rand(x, gen) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, gen) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, gen) + 0.5) + mean


def _translate(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device, generator=gen)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device, generator=gen)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy  # source row of each output row
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx
    valid = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)
    padded = F.pad(x, (1, 1, 1, 1))  # index 0 / -1 of the padding is the zero fill
    rows, cols = (rows + 1).clamp(0, h + 1), (cols + 1).clamp(0, w + 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    return out * valid


def _cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device, generator=gen)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device, generator=gen)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - cy + ch // 2
    cols = torch.arange(w, device=x.device).view(1, 1, w) - cx + cw // 2
    cut = (rows >= 0) & (rows < ch) & (cols >= 0) & (cols < cw)
    return x * (~cut).unsqueeze(1).to(x.dtype)
