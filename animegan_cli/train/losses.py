"""GAN objectives as objects that own their discriminator and generator step.

As stylegan2-ada-pytorch's `Loss.accumulate_gradients`: a loss runs the forward passes it
needs, computes its objective and calls backward (through the GradScaler); the engine only
zeroes and steps the optimizers. A new objective or a regulariser is one subclass here, plus
its name in `config.Loss`.

Every loss works on raw discriminator logits, in float32 whatever the autocast precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from animegan_cli.errors import UserError
from animegan_cli.train.config import TrainConfig

R1_INTERVAL = 16  # lazy regularisation: StyleGAN2's interval, a sixteenth of the cost


@dataclass(frozen=True)
class Players:
    """What a loss plays with: the networks as they run (DDP- or compile-wrapped), the plain
    discriminator (frozen during G's step), the augmentation of D's inputs, the autocast."""

    G: nn.Module
    D: nn.Module
    D_module: nn.Module
    augment: Callable[[torch.Tensor], torch.Tensor]
    autocast: Callable[[], contextlib.AbstractContextManager[object]]
    # D's weight gradients are not needed for G's step; skipping them saves a third of D's
    # backward. DDP needs every parameter to produce a gradient, so not under DDP.
    freeze_d_for_g: bool


class DStep(NamedTuple):
    loss: torch.Tensor
    fake: torch.Tensor  # G(z), still attached to G's graph: the generator step reuses it
    real_logits: torch.Tensor
    fake_logits: torch.Tensor


class Loss:
    """One objective: `d_objective`/`g_objective` on logits; the steps around them are shared."""

    name: ClassVar[str]
    # TrainConfig fields only some losses read; any other loss refuses a non-default value.
    options: ClassVar[tuple[str, ...]] = ()
    # A relativistic loss judges each fake against a real of the same batch: G's objective
    # then needs D's logits on the real batch too, and the lazy penalty is also applied at the
    # fakes (R2), as the pairing needs both to converge (Huang et al. 2024).
    relativistic: ClassVar[bool] = False

    def __init__(self, players: Players, config: TrainConfig) -> None:
        self.players = players
        self.config = config

    def d_objective(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_objective(self, fake: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
        """G's objective on D's logits for the fakes (and, for a relativistic loss only, for
        the real batch; None otherwise)."""
        raise NotImplementedError

    def accumulate_d(self, real: torch.Tensor, z: torch.Tensor, scaler: torch.amp.GradScaler,
                     step: int) -> DStep:
        """D's gradients on a real batch and on G(z), detached; every R1_INTERVAL-th step
        also the lazy penalty's (when --r1-gamma is set): R1 at the reals, and for a
        relativistic loss R2 at the fakes as well."""
        p = self.players
        with p.autocast():
            fake = p.G(z)
        # The penalties before the main backward: under DDP that is what averages them.
        if self.config.r1_gamma > 0 and step % R1_INTERVAL == 0:
            scaler.scale(self.gradient_penalty(real)).backward()
            if self.relativistic:
                scaler.scale(self.gradient_penalty(fake.detach())).backward()
        with p.autocast():
            real_logits = p.D(p.augment(real))
            fake_logits = p.D(p.augment(fake.detach()))
            loss = self.d_objective(real_logits.float(), fake_logits.float())
        scaler.scale(loss).backward()
        return DStep(loss.detach(), fake, real_logits.detach(), fake_logits.detach())

    def gradient_penalty(self, images: torch.Tensor) -> torch.Tensor:
        """Lazy R1 (Mescheder et al. 2018; StyleGAN2's lazy form): gamma/2 E|grad_x D(x)|^2
        at real images, computed every R1_INTERVAL steps and scaled by it to keep its weight.
        It keeps D's surface flat where the data is, so D cannot win by sharp edges. At fake
        images the same term is R2.

        A pass of its own through the plain D: torch.compile has no double backward, and
        under DDP its gradients, accumulated before the main backward, are averaged with it.
        """
        p = self.players
        x = images.detach().requires_grad_(True)
        with p.autocast():
            logits = p.D_module(p.augment(x))
        (grad,) = torch.autograd.grad(logits.float().sum(), x, create_graph=True)
        return grad.float().square().sum(dim=(1, 2, 3)).mean() * (
            self.config.r1_gamma / 2 * R1_INTERVAL)

    def accumulate_g(self, fake: torch.Tensor, real: torch.Tensor,
                     scaler: torch.amp.GradScaler) -> torch.Tensor:
        """G's gradients through the (updated) discriminator's verdict on `fake` (and, for a
        relativistic loss, on the `real` batch it is paired with)."""
        p = self.players
        if p.freeze_d_for_g:
            p.D_module.requires_grad_(False)
        with p.autocast():
            fake_logits = p.D(p.augment(fake)).float()
            real_logits = p.D(p.augment(real)).float() if self.relativistic else None
            loss = self.g_objective(fake_logits, real_logits)
        scaler.scale(loss).backward()
        if p.freeze_d_for_g:
            p.D_module.requires_grad_(True)
        return loss.detach()


class BCELoss(Loss):
    """The DCGAN paper's loss, with the non-saturating generator objective."""

    name = "bce"
    options = ("label_smoothing",)

    def d_objective(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        # One-sided label smoothing (Salimans et al. 2016): only the real target moves.
        target = torch.full_like(real, 1.0 - self.config.label_smoothing)
        return F.binary_cross_entropy_with_logits(real, target) + F.softplus(fake).mean()

    def g_objective(self, fake: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
        return F.softplus(-fake).mean()  # maximise log D(G(z))


class HingeLoss(Loss):
    """Lim & Ye 2017, as in SAGAN and BigGAN."""

    name = "hinge"

    def d_objective(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def g_objective(self, fake: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
        return -fake.mean()


class LSGANLoss(Loss):
    """Least squares (Mao et al. 2017), targets 1 for real and 0 for fake."""

    name = "lsgan"

    def d_objective(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real - 1.0).square().mean() + fake.square().mean())

    def g_objective(self, fake: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
        return 0.5 * (fake - 1.0).square().mean()


class RelativisticLoss(Loss):
    """The relativistic pairing GAN (Jolicoeur-Martineau 2018) as R3GAN trains it (Huang et
    al. 2024, "The GAN is dead; long live the GAN!"): D scores each fake against the real of
    the same batch position, softplus(D(fake) - D(real)), G the reverse; with R1 and R2
    (--r1-gamma sets both, as the paper's one gamma)."""

    name = "rpgan"
    relativistic = True

    def d_objective(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(fake - real).mean()

    def g_objective(self, fake: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
        assert real is not None, "a relativistic objective needs D's logits on the reals"
        return F.softplus(real - fake).mean()


# In config.LOSSES order (a unit test checks the two name the same losses).
LOSS_CLASSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (HingeLoss, BCELoss, LSGANLoss, RelativisticLoss)}


def make_loss(players: Players, config: TrainConfig) -> Loss:
    return LOSS_CLASSES[config.loss](players, config)


def check_loss_options(config: TrainConfig) -> None:
    """Refuse a loss-specific option the chosen loss would silently ignore."""
    chosen = LOSS_CLASSES[config.loss]
    defaults = TrainConfig()
    specific = {name for cls in LOSS_CLASSES.values() for name in cls.options}
    for name in sorted(specific - set(chosen.options)):
        if getattr(config, name) != getattr(defaults, name):
            users = [cls.name for cls in LOSS_CLASSES.values() if name in cls.options]
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} only acts on --loss {' or '.join(users)}, not on "
                            f"--loss {config.loss}; pass {flag} {getattr(defaults, name)} or "
                            f"--loss {users[0]}")
