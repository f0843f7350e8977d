"""An exponential moving average of the generator's weights (Karras et al. 2018, Yazici et al.
2019): sampling from the average gives visibly smoother, more stable images than the raw G.

The average is defined by a half-life in images, as StyleGAN's ema_kimg: each step of B images
keeps 0.5 ** (B / half_life) of the average, so it means the same at batch 8 and at batch 64
(a per-step beta of 0.999 spans 5.5k images at batch 8 and 44k at batch 64). Ramp-up: the
half-life is at most RAMP_UP times the images seen so far, so a short run is not averaged with
its random start (StyleGAN2-ADA's ema_rampup).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

RAMP_UP = 0.05


class EMA:
    def __init__(self, model: nn.Module, half_life: float) -> None:
        self.half_life = half_life  # images
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def beta(self, images_seen: int, batch_images: int) -> float:
        """The share of the average kept at a step of `batch_images` after `images_seen`."""
        half_life = min(self.half_life, RAMP_UP * images_seen)
        return 0.5 ** (batch_images / half_life) if half_life > 0 else 0.0

    @torch.no_grad()
    def update(self, model: nn.Module, images_seen: int, batch_images: int) -> None:
        ema_params = list(self.model.parameters())
        weight = 1.0 - self.beta(images_seen, batch_images)
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], weight)


@torch.no_grad()
def recalibrate_batchnorm(g: nn.Module, nz: int, device: torch.device, seed: int,
                          batches: int = 8, batch_size: int = 128) -> None:
    """Re-estimate BatchNorm statistics for the EMA weights from fresh noise.

    The averaged weights never ran a forward pass, so the running statistics copied from G do
    not describe their activations; without this, eval-mode samples drift in colour and
    contrast. A cumulative average (momentum None) over a fixed set of batches is exact and
    deterministic.
    """
    bns = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    gen = torch.Generator(device=device).manual_seed(seed)
    g.train()
    for _ in range(batches):
        g(torch.randn(batch_size, nz, device=device, generator=gen))
    g.eval()
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
