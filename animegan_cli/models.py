"""The networks: a generator and a discriminator for each architecture, built from a ModelConfig.

Two architectures share one interface:

- ``dcgan``: Radford et al. 2015 as in pytorch/examples/dcgan. G is 4x4 transposed convolutions
  (stride 1, then 2) with BatchNorm and ReLU, D is 4x4 stride-2 convolutions with BatchNorm
  (not on the first layer) and LeakyReLU(0.2).
- ``seed``: the network of the article this project grew from. D is 3x3 stride-2 'same'
  convolutions (32, 64, 128, 256 channels) then a 4x4 'valid' one to a logit; G is a 4x4 'valid'
  transposed convolution to 4x4x512, then 3x3 stride-2 'same' ones, LeakyReLU between.

Image sizes 32, 64 and 128 remove or add one up/down block. The config is stored in every
checkpoint, so it is validated strictly: it may come from a hostile file.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

ARCHS = ("dcgan", "seed")
IMAGE_SIZES = (32, 64, 128)
# Defaults per architecture: (ngf, ndf). The seed article's D starts at 32 channels.
DEFAULT_WIDTHS = {"dcgan": (64, 64), "seed": (64, 32)}
MAX_WIDTH = 1024
MAX_NZ = 1024


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "dcgan"
    image_size: int = 64
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of "
                             f"{', '.join(ARCHS)}")
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(
                f"unsupported image size {self.image_size}; choose one of "
                + ", ".join(map(str, IMAGE_SIZES))
            )
        for name, value, top in (("nz", self.nz, MAX_NZ), ("ngf", self.ngf, MAX_WIDTH),
                                 ("ndf", self.ndf, MAX_WIDTH)):
            if type(value) is not int or not 1 <= value <= top:
                raise ValueError(f"{name} must be an integer from 1 to {top}, got {value!r}")
        if type(self.spectral_norm) is not bool:
            raise ValueError("spectral_norm must be true or false")

    @classmethod
    def for_arch(cls, arch: str = "dcgan", image_size: int = 64, nz: int = 100,
                 ngf: int | None = None, ndf: int | None = None,
                 spectral_norm: bool = False) -> ModelConfig:
        """A config with the architecture's own default widths where none are given."""
        default_g, default_d = DEFAULT_WIDTHS.get(arch, (64, 64))
        return cls(arch, image_size, nz, ngf or default_g, ndf or default_d, spectral_norm)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Parse and validate; raises ValueError on anything unexpected."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("model config is not a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"model config has unknown fields: {', '.join(sorted(unknown))}")
        return cls(**data)


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
