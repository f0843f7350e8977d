"""What defines a network, without torch: the architecture choices, the image sizes, and the
validated `ModelConfig` every checkpoint stores. Torch-free so the CLI can list the choices
(and `prepare` check sizes) without importing torch.

The config is stored in every checkpoint, so it is validated strictly: it may come from a
hostile file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Literal, get_args

Arch = Literal["dcgan", "resize", "seed"]
ImageSize = Literal[32, 64, 128]
ARCHS: tuple[str, ...] = get_args(Arch)
IMAGE_SIZES: tuple[int, ...] = get_args(ImageSize)
# Defaults per architecture: (ngf, ndf). dcgan at half pytorch/examples' 64 (which
# `--recipe canonical` keeps): a quarter of the convolution work, about 3x the images per
# CPU-second at batch 8, and lower KID on every set at equal CPU time (docs/quality.md). The
# seed article's D starts at 32 channels.
DEFAULT_WIDTHS = {"dcgan": (32, 32), "resize": (64, 64), "seed": (64, 32)}
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
