"""The networks: a generator and a discriminator for each architecture, built from a ModelConfig.

Two architectures share one interface:

- ``dcgan``: Radford et al. 2015 as in pytorch/examples/dcgan. G is 4x4 transposed convolutions
  (stride 1, then 2) with BatchNorm and ReLU, D is 4x4 stride-2 convolutions with BatchNorm
  (not on the first layer) and LeakyReLU(0.2).
- ``seed``: the network of the article this project grew from. D is 3x3 stride-2 'same'
  convolutions (32, 64, 128, 256 channels) then a 4x4 'valid' one to a logit; G is a 4x4 'valid'
  transposed convolution to 4x4x512, then 3x3 stride-2 'same' ones, LeakyReLU between.

Image sizes 32, 64 and 128 remove or add one up/down block. The choices and the validated config
live in model_config.py (torch-free).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from animegan_cli.model_config import ModelConfig


def _blocks(image_size: int) -> int:
    """Number of 2x up/down blocks between 4x4 and half the image size (3 at 64 px)."""
    return int(math.log2(image_size)) - 3


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = _blocks(cfg.image_size)
        width = cfg.ngf * 2**n
        layers: list[nn.Module]
        if cfg.arch == "dcgan":
            act: type[nn.Module] = nn.ReLU
            layers = [nn.ConvTranspose2d(cfg.nz, width, 4, 1, 0, bias=False)]
            up_kernel, up_pad, out_pad = 4, 1, 0
        else:
            act = nn.LeakyReLU
            layers = [nn.ConvTranspose2d(cfg.nz, width, 4, 1, 0, bias=False)]
            up_kernel, up_pad, out_pad = 3, 1, 1  # 'same' stride-2 transposed conv doubles size
        layers += [nn.BatchNorm2d(width), _activation(act)]
        for _ in range(n):
            layers += [
                nn.ConvTranspose2d(width, width // 2, up_kernel, 2, up_pad, out_pad, bias=False),
                nn.BatchNorm2d(width // 2),
                _activation(act),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, 3, up_kernel, 2, up_pad, out_pad, bias=False),
                   nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = _blocks(cfg.image_size)
        width = cfg.ndf
        kernel, pad = (4, 1) if cfg.arch == "dcgan" else (3, 1)
        wrap = nn.utils.parametrizations.spectral_norm if cfg.spectral_norm else _identity
        layers: list[nn.Module] = [wrap(nn.Conv2d(3, width, kernel, 2, pad, bias=False))]
        if cfg.arch == "seed":  # the seed article normalises every layer, the first included
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        for _ in range(n):
            layers += [
                wrap(nn.Conv2d(width, width * 2, kernel, 2, pad, bias=False)),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers.append(wrap(nn.Conv2d(width, 1, 4, 1, 0, bias=False)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


def _activation(kind: type[nn.Module]) -> nn.Module:
    return nn.ReLU(inplace=True) if kind is nn.ReLU else nn.LeakyReLU(0.2, inplace=True)


def _identity(module: nn.Module) -> nn.Module:
    return module


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            weight = getattr(m, "parametrizations", None)
            target = weight.weight.original if weight is not None else m.weight
            nn.init.normal_(target, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build(cfg: ModelConfig, device: torch.device | str = "cpu") -> tuple[Generator, Discriminator]:
    g, d = Generator(cfg), Discriminator(cfg)
    init_weights(g)
    init_weights(d)
    return g.to(device), d.to(device)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
