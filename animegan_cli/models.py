"""The networks: a generator and a discriminator for each architecture, built from a ModelConfig.

Three architectures share one interface:

- ``dcgan``: Radford et al. 2015 as in pytorch/examples/dcgan. G is 4x4 transposed convolutions
  (stride 1, then 2) with BatchNorm and ReLU, D is 4x4 stride-2 convolutions with BatchNorm
  (not on the first layer) and LeakyReLU(0.2).
- ``resize``: dcgan with each stride-2 transposed convolution of G (the last, to RGB, included)
  replaced by a nearest-neighbour 2x resize and a 3x3 stride-1 convolution; D is dcgan's. Why:
  a stride-2 transposed convolution computes each of the four pixel phases (even/odd row and
  column) with its own subset of kernel taps, so neighbouring pixels are weighted differently
  and samples show a checkerboard (Odena, Dumoulin & Olah 2016, "Deconvolution and checkerboard
  artifacts"); resize-convolution applies the same kernel at every pixel. Its 3x3 kernels make
  G smaller (2.37M parameters at 64 px, dcgan 3.58M) but about 2.2x the multiply-adds, as they
  run at the output resolution.
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
        act: type[nn.Module] = nn.LeakyReLU if cfg.arch == "seed" else nn.ReLU
        layers: list[nn.Module] = [nn.ConvTranspose2d(cfg.nz, width, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(width), _activation(act)]
        for _ in range(n):
            layers += [*_upsample(cfg.arch, width, width // 2), nn.BatchNorm2d(width // 2),
                       _activation(act)]
            width //= 2
        layers += [*_upsample(cfg.arch, width, 3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


def _upsample(arch: str, c_in: int, c_out: int) -> list[nn.Module]:
    """One 2x upsampling step of G, as the layers to splice into its flat Sequential."""
    if arch == "resize":  # nearest-neighbour resize, then a 3x3 'same' convolution
        return [nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)]
    if arch == "seed":  # 3x3 'same' stride-2 transposed convolution
        return [nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, 1, bias=False)]
    return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)]


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = _blocks(cfg.image_size)
        width = cfg.ndf
        kernel, pad = (3, 1) if cfg.arch == "seed" else (4, 1)  # dcgan's D serves resize too
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
