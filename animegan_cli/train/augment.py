"""Augmentations of D's inputs, the same on real and fake images, so D cannot memorise a
small dataset and G still gets useful gradients (every transform is differentiable):

- DiffAugment (Zhao et al. 2020, --augment): colour (brightness, saturation, contrast),
  translation (1/8 of the side, zero padded) and cutout (a square of half the side), always;
- adaptive augmentation (Karras et al. 2020, --ada-target): `AdaptiveAugment`, each transform
  with a probability that follows how much D overfits.

All randomness comes from the caller's generator, so training stays reproducible and resumes
exactly.
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


class AdaptiveAugment:
    """Adaptive discriminator augmentation (Karras et al. 2020, "Training GANs with limited
    data"): every transform below is applied to each image with probability p, to real and
    fake images alike, and p is steered by the overfitting heuristic r_t = E[sign D(real)]:
    up when D grows too sure of the real images (r_t above the target), down otherwise.
    p starts at 0, so a D that does not overfit is never augmented.

    Transforms (the paper's "bgc" subset that is cheap on a CPU): horizontal flip, rotation by
    a multiple of 90 degrees, integer translation (reflect padding), brightness, contrast,
    saturation. All differentiable; all randomness from the caller's generator. p and the
    heuristic's running sums stay on the device (no host sync) and go into checkpoints.
    """

    INTERVAL = 4  # D steps between adjustments of p
    STATE = ("p", "signs", "count")  # the tensors a checkpoint holds for an exact resume
    # Images over which p may move from 0 to 1. The paper's 500k images suit runs of 25M;
    # CPU runs see 20k-300k images, so p must react within a few thousand.
    SPEED_IMAGES = 20_000

    def __init__(self, target: float, device: torch.device) -> None:
        self.target = target
        self.p = torch.zeros((), device=device)
        self.signs = torch.zeros((), device=device)  # sum of sign(D(real)) since the adjustment
        self.count = torch.zeros((), device=device)  # logits in that sum

    def observe(self, real_logits: torch.Tensor) -> None:
        self.signs += real_logits.detach().float().sign().sum()
        self.count += real_logits.numel()

    def adjust(self, images: int) -> None:
        """Move p after `images` real images were observed (on every rank: all-reduce the sums
        first under DDP, the caller's job)."""
        r_t = self.signs / self.count.clamp(min=1)
        step = torch.sign(r_t - self.target) * (images / self.SPEED_IMAGES)
        self.p = (self.p + step).clamp(0.0, 1.0)
        self.signs.zero_()
        self.count.zero_()

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        # In float32 whatever autocast made of the images (G's bf16 output): the random factors
        # are float32, and lerp refuses mixed dtypes. A no-op in fp32 training.
        dtype, x = x.dtype, x.float()
        return self._augment(x, gen).to(dtype)

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = x.shape[0]

        def chosen() -> torch.Tensor:  # (n, 1, 1, 1): which images get this transform
            return (torch.rand(n, 1, 1, 1, device=x.device, generator=gen) < self.p).to(x.dtype)

        x = torch.lerp(x, x.flip(3), chosen())
        turns = torch.randint(1, 4, (n, 1, 1, 1), device=x.device, generator=gen)
        rotated = torch.where(turns == 1, x.rot90(1, (2, 3)),
                              torch.where(turns == 2, x.rot90(2, (2, 3)), x.rot90(3, (2, 3))))
        x = torch.lerp(x, rotated, chosen())
        x = torch.lerp(x, _translate_reflect(x, gen), chosen())
        x = x + chosen() * torch.randn(n, 1, 1, 1, device=x.device, generator=gen) * 0.2
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        contrast = torch.exp2(torch.randn(n, 1, 1, 1, device=x.device, generator=gen) * 0.5)
        x = torch.lerp(x, (x - mean) * contrast + mean, chosen())
        luma = x.mean(dim=1, keepdim=True)
        saturation = torch.exp2(torch.randn(n, 1, 1, 1, device=x.device, generator=gen))
        return torch.lerp(x, (x - luma) * saturation + luma, chosen())


def _translate_reflect(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125
                       ) -> torch.Tensor:
    """Shift each image by up to `ratio` of its side, filling from the mirrored border."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device, generator=gen)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device, generator=gen)
    padded = F.pad(x, (sx, sx, sy, sy), mode="reflect")
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy + sy
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx + sx
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
