"""An exponential moving average of the generator's weights (Karras et al. 2018, Yazici et al.
2019): sampling from the average gives visibly smoother, more stable images than the raw G.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, beta: float) -> None:
        self.beta = beta
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Warm-up: early in training a 0.999 average would still remember the random init.
        beta = min(self.beta, (1 + step) / (10 + step))
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - beta)


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
