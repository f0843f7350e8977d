"""Sampling from a trained generator: the `animegan sample` command and the Python API.

Every image has its own seed: image i of `sample --seed S` is drawn from the latent of seed
S + i, so any image can be regenerated alone (`--seeds 17`) and a batch never changes what an
image looks like (the generator runs in eval mode, so BatchNorm does not mix images).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from animegan_cli import checkpoint
from animegan_cli.atomic import sync_files
from animegan_cli.console import ProgressFn
from animegan_cli.device import select_device, to_uint8
from animegan_cli.errors import UserError
from animegan_cli.image_choices import FORMATS
from animegan_cli.images import format_for, make_grid, save_image
from animegan_cli.model_config import ModelConfig
from animegan_cli.run_dir import RunDir

MAX_GRID_IMAGES = 4096  # a bigger grid is tens of thousands of pixels wide: use --out-dir


def latents(seeds: Sequence[int], nz: int, truncation: float | None = None) -> torch.Tensor:
    """One latent per seed, independent of the others (CPU generator: same on every device)."""
    out = torch.empty(len(seeds), nz)
    gen = torch.Generator()
    for i, seed in enumerate(seeds):
        gen.manual_seed(seed)
        z = torch.randn(nz, generator=gen)
        if truncation is not None:
            # Truncated normal by resampling: values beyond +-T are redrawn, not clipped.
            for _ in range(1000):
                bad = z.abs() > truncation
                if not bad.any():
                    break
                z[bad] = torch.randn(int(bad.sum()), generator=gen)
            z.clamp_(-truncation, truncation)
        out[i] = z
    return out


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: stays on the shell where Gaussian latents live."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.acos((an * bn).sum().clamp(-1, 1))
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@torch.no_grad()
def generate(net: torch.nn.Module, z: torch.Tensor, device: torch.device,
             batch_size: int = 256, progress: ProgressFn | None = None) -> Iterator[np.ndarray]:
    """uint8 NHWC images of `net` (in the mode it is in) for latents z, in bounded batches;
    `progress(done, total)` after each batch."""
    for start in range(0, z.shape[0], batch_size):
        yield to_uint8(net(z[start:start + batch_size].to(device)))
        if progress is not None:
            progress(min(start + batch_size, z.shape[0]), z.shape[0])


@dataclass
class LoadedGenerator:
    """A generator ready to sample, from either kind of checkpoint. The notebook API."""

    net: torch.nn.Module
    config: ModelConfig
    device: torch.device
    ckpt: checkpoint.Checkpoint

    def generate(self, z: torch.Tensor, batch_size: int = 256,
                 progress: ProgressFn | None = None) -> Iterator[np.ndarray]:
        """uint8 NHWC images for latents z, in bounded memory batches."""
        return generate(self.net, z, self.device, batch_size, progress)

    def sample(self, n: int, seed: int = 0, truncation: float | None = None,
               uint8: bool = True) -> torch.Tensor:
        """n images (seeds seed..seed+n-1): uint8 NHWC, or float NCHW in [-1, 1]."""
        z = latents(range(seed, seed + n), self.config.nz, truncation)
        if uint8:
            return torch.from_numpy(np.concatenate(list(self.generate(z))))
        with torch.no_grad():
            return self.net(z.to(self.device)).float().cpu()

    def interpolate(self, seeds: Sequence[int], steps: int = 16,
                    progress: ProgressFn | None = None) -> torch.Tensor:
        """A closed loop through the seeds' latents: uint8 frames (len(seeds)*steps, H, W, 3)."""
        keys = latents(seeds, self.config.nz)
        path = [slerp(keys[i], keys[(i + 1) % len(keys)], s / steps)
                for i in range(len(keys)) for s in range(steps)]
        return torch.from_numpy(np.concatenate(list(self.generate(torch.stack(path),
                                                                  progress=progress))))


def load_generator(path: str | os.PathLike[str], device: str = "auto") -> LoadedGenerator:
    """`path`: a checkpoint, a run folder (its generator) or an `animegan export` folder."""
    ckpt = checkpoint.open_checkpoint(RunDir.checkpoint_for(Path(path), need_full=False))
    dev = select_device(device)
    return LoadedGenerator(checkpoint.load_generator_module(ckpt, dev), ckpt.model, dev, ckpt)


def parse_seeds(text: str) -> list[int]:
    """'0-63', '5,9,17' or '0-3,10': the seeds in the order given."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if hi else int(lo)
            if last < first or first < 0 or last - first > 1_000_000:
                raise ValueError
            seeds.extend(range(first, last + 1))
    except ValueError:
        raise UserError(f"--seeds {text!r} is not valid; use a range like 0-63 or a list like "
                        "5,9,17 (non-negative)") from None
    return seeds


def sample_to_files(gen: LoadedGenerator, *, seeds: list[int], out: Path | None,
                    out_dir: Path | None, nrow: int, truncation: float | None, fmt: str,
                    batch_size: int, progress: ProgressFn | None = None) -> list[Path]:
    """Write a grid to `out` and/or one file per image into `out_dir`; return what was written.

    `out` takes its format from its ending, and holds the image itself when there is only one
    (a grid of one would add a border). nrow 0 makes the grid square; fmt (a key of
    image_choices.FORMATS) is the per-image file type. `progress(done, total)` after each batch.
    """
    # The CLI's choice list already refused other formats; Python callers have no such guard.
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    if out is not None:
        format_for(out)  # refused before any image is generated
    if truncation is not None and truncation <= 0:
        raise UserError("--truncation must be positive (e.g. 0.7); omit it for no truncation")
    if out is not None and len(seeds) > MAX_GRID_IMAGES:
        raise UserError(f"a grid of {len(seeds)} images is too large; use --out-dir for one file "
                        f"per image, or -n {MAX_GRID_IMAGES} or less")
    z = latents(seeds, gen.config.nz, truncation)
    files: list[Path] = []
    grid_parts: list[np.ndarray] = []
    for images in gen.generate(z, batch_size, progress):
        if out_dir is not None:
            # Each file renamed into place whole, all synced once at the end (sync_files).
            for image in images:
                path = out_dir / f"seed{seeds[len(files)]:06d}.{fmt}"
                save_image(image, path, FORMATS[fmt], durable=False)
                files.append(path)
        if out is not None:
            grid_parts.append(images)
    sync_files(files)
    if out is not None:
        images = np.concatenate(grid_parts)
        save_image(images[0] if len(images) == 1 else
                   make_grid(images, nrow=nrow or math.isqrt(len(images))), out)
        files.append(out)
    return files


def rank_by_discriminator(gen: LoadedGenerator, *, seeds: list[int], keep: int,
                          truncation: float | None, batch_size: int) -> list[int]:
    """The `keep` seeds whose images the checkpoint's discriminator scores as most real."""
    d = checkpoint.load_discriminator_module(gen.ckpt, gen.device)
    if d is None:
        what = ("is an exported model, which holds only the generator" if gen.ckpt.kind == "export"
                else "has no discriminator")
        raise UserError(f"{gen.ckpt.path} {what}; --rank-by-d needs the full checkpoint: pass "
                        "the run folder, or RUN/checkpoints/last.safetensors")
    if not 1 <= keep <= len(seeds):
        raise UserError(f"--rank-by-d {keep} must be between 1 and the number of images "
                        f"generated ({len(seeds)}); raise -n to choose from more")
    z = latents(seeds, gen.config.nz, truncation)
    scores = []
    with torch.no_grad():
        for start in range(0, len(seeds), batch_size):
            images = gen.net(z[start:start + batch_size].to(gen.device))
            scores.append(d(images).float().cpu())
    order = torch.cat(scores).argsort(descending=True)[:keep]
    return [seeds[i] for i in order.tolist()]


def walk_frames(gen: LoadedGenerator, walks: list[list[int]], steps: int, nrow: int,
                progress: ProgressFn | None = None) -> list[np.ndarray]:
    """Frames of several looping latent walks side by side, one grid per frame;
    `progress(done, total)` counts the frames of all walks."""
    if steps < 1 or any(len(w) < 2 for w in walks):
        raise UserError("an interpolation needs --steps of at least 1 and at least 2 seeds "
                        "per walk")
    total = sum(len(w) * steps for w in walks)
    per_walk = []
    for walk in walks:
        before = sum(len(frames) for frames in per_walk)
        report = None if progress is None else \
            (lambda done, _total, before=before: progress(before + done, total))
        per_walk.append(gen.interpolate(walk, steps, report).numpy())
    if len(walks) == 1:
        return list(per_walk[0])
    return [make_grid(np.stack([frames[i] for frames in per_walk]), nrow=nrow or
                      math.isqrt(len(walks)))
            for i in range(per_walk[0].shape[0])]
