"""GAN losses on raw discriminator logits.

Each returns (loss_d, loss_g) halves through two functions so the D step and the G step can
be computed at different times (the G step sees D after its update).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor,
           label_smoothing: float = 0.0) -> torch.Tensor:
    real, fake = real.float(), fake.float()
    if kind == "bce":
        # One-sided label smoothing (Salimans et al. 2016): only the real target moves.
        target = torch.full_like(real, 1.0 - label_smoothing)
        return (F.binary_cross_entropy_with_logits(real, target)
                + F.softplus(fake).mean())
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "lsgan":
        return 0.5 * ((real - 1.0).square().mean() + fake.square().mean())
    raise ValueError(f"unknown loss {kind!r}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    fake = fake.float()
    if kind == "bce":
        return F.softplus(-fake).mean()  # non-saturating: maximise log D(G(z))
    if kind == "hinge":
        return -fake.mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1.0).square().mean()
    raise ValueError(f"unknown loss {kind!r}")
