"""SWD (Karras et al. 2018, Progressive GAN, section 5 and appendix D): sliced Wasserstein
distance between 7x7 patches of the two sets' Laplacian pyramids, per level, x1e3.

Follows the reference `metrics/sliced_wasserstein.py` of tkarras/progressive_growing_of_gans.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from animegan_cli.metrics import MetricInputs, MetricResult, Row
from animegan_cli.metrics._images import Images, uint8_nhwc

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
_PROJECTION_FLOATS = 2**24  # 64 MB of float32


def swd_resolutions(side: int) -> list[int]:
    """The pyramid levels SWD reports for images `side` pixels wide: halving down to 16."""
    sides = []
    while side >= 16:
        sides.append(side)
        side //= 2
    return sides


def laplacian_band(images: torch.Tensor, level: int, levels: int) -> torch.Tensor:
    """Band `level` of a `levels`-band Laplacian pyramid of float NCHW images, finest first.

    The last band is the Gaussian residual. cv2.pyrDown/pyrUp semantics with mirror borders,
    as the reference computes them (via scipy); only what this band needs is computed.
    """
    gaussian = images
    for _ in range(level):
        gaussian = _pyr_down(gaussian)
    if level == levels - 1:
        return gaussian
    return gaussian - _pyr_up(_pyr_down(gaussian))


def _blur(x: torch.Tensor, stride: int = 1, gain: float = 1.0) -> torch.Tensor:
    """The 5x5 binomial filter as two 1-D passes with scipy's "mirror" (torch "reflect")
    borders; stride 2 computes only the pixels pyrDown keeps. Sums of shifted slices: several
    times faster on CPU than a depthwise conv2d."""
    h, w = x.shape[-2:]
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    taps = (_BINOMIAL * gain).tolist()
    x = sum(t * x[:, :, i:i + h:stride, :] for i, t in enumerate(taps))
    return sum(t * x[:, :, :, i:i + w:stride] for i, t in enumerate(taps))


def _pyr_down(x: torch.Tensor) -> torch.Tensor:
    return _blur(x, stride=2)


def _pyr_up(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _blur(up, gain=2.0)  # 2 per pass, 4 in all: three pixels in four are inserted zeros


def swd(real: Images, fake: Images, seed: int = 0, *, nhoods_per_image: int = 128,
        nhood_size: int = 7, dir_repeats: int = 4, dirs_per_repeat: int = 128,
        batch_size: int = 256, device: str | torch.device = "cpu") -> dict[str, float]:
    """Sliced Wasserstein distance x1e3 per pyramid level (`swd_64`, `swd_32`, ...) and `swd`.

    Defaults are the reference's: 128 patches of 7x7 per image and level, 4 repeats of 128
    random directions (the paper's 512 projections). Both sets must hold as many images of the
    same size. Lower is better, 0 for identical sets; values depend on the number of images,
    so compare runs only at equal counts. Deterministic for a given seed.
    """
    a, b = uint8_nhwc(real, "real"), uint8_nhwc(fake, "fake")
    if a.shape != b.shape:
        raise ValueError(f"SWD needs two sets of the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    n, h, w, _ = a.shape
    sides = swd_resolutions(h)
    if h != w or not sides or h % 2 ** (len(sides) - 1):
        raise ValueError(f"SWD needs square images of 16 pixels or more that halve evenly to 16, "
                         f"got {h}x{w}")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    radius = nhood_size // 2
    result: dict[str, float] = {}
    for level, side in enumerate(sides):
        # One set of patch positions for both sets: identical sets score exactly 0, and the
        # difference between the sets is not buried under patch-sampling noise.
        ys = torch.randint(radius, side - radius, (n, nhoods_per_image), generator=gen)
        xs = torch.randint(radius, side - radius, (n, nhoods_per_image), generator=gen)
        da = _descriptors(a, level, len(sides), ys, xs, radius, batch_size, device)
        db = _descriptors(b, level, len(sides), ys, xs, radius, batch_size, device)
        # The reference averages repeats of equally many directions: one mean over all of them.
        dirs = torch.cat([torch.randn(da.shape[1], dirs_per_repeat, generator=gen)
                          for _ in range(dir_repeats)], dim=1)
        result[f"swd_{side}"] = 1e3 * _sliced_wasserstein(da, db, dirs)
        del da, db
    result["swd"] = float(np.mean(list(result.values())))
    return result


def _descriptors(images: torch.Tensor, level: int, levels: int, ys: torch.Tensor,
                 xs: torch.Tensor, radius: int, batch_size: int,
                 device: torch.device) -> torch.Tensor:
    """Normalised patch descriptors (images * patches, 3 * size * size) of one pyramid level."""
    offsets = torch.arange(-radius, radius + 1, device=device)
    channels = torch.arange(3, device=device)[:, None, None]
    parts = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device).permute(0, 3, 1, 2).float()
        band = laplacian_band(x, level, levels)
        rows = ys[start:start + batch_size].to(device)[:, :, None, None, None] + offsets[:, None]
        cols = xs[start:start + batch_size].to(device)[:, :, None, None, None] + offsets
        image = torch.arange(len(band), device=device)[:, None, None, None, None]
        parts.append(band[image, channels, rows, cols].flatten(0, 1))  # (B * nh, 3, k, k)
    desc = torch.cat(parts)
    del parts  # descriptors are the bulk of SWD's memory: keep one copy of them
    # Each set is normalised by its own per-channel mean and std, as in the reference.
    mean = desc.mean(dim=(0, 2, 3), keepdim=True)
    std = desc.std(dim=(0, 2, 3), keepdim=True, correction=0)
    # A band with no variation at all (flat images) gives zeros instead of NaN.
    return desc.sub_(mean).div_(std.clamp_min(1e-8)).flatten(1)


def _sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, dirs: torch.Tensor) -> float:
    """Mean over directions (columns of `dirs`) of the 1-D Wasserstein distance between the
    two sets of descriptors (rows of `a` and `b`) projected on them."""
    dirs = (dirs / dirs.norm(dim=0, keepdim=True)).T.contiguous().to(a.device)
    at, bt = a.T.contiguous(), b.T.contiguous()
    # As many directions at a time as keep each projection under _PROJECTION_FLOATS: bounded
    # memory for large sets, and few operations (each a thread synchronisation) for small ones.
    total = 0.0
    for d in dirs.split(max(1, _PROJECTION_FLOATS // len(a))):
        pa, pb = _sort_rows(d @ at), _sort_rows(d @ bt)
        total += float((pa - pb).abs_().mean(dim=1).double().sum())
    return total / len(dirs)


def _sort_rows(x: torch.Tensor) -> torch.Tensor:
    if x.device.type == "cpu":
        # numpy's vectorised sort is about twice as fast as torch.sort on CPU, and sorting is
        # most of SWD's cost there.
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return torch.sort(x, dim=1).values


def compute(inputs: MetricInputs) -> MetricResult:
    """The registry's SWD: every level, reported with the number of images it compared."""
    values = swd(inputs.real, inputs.fake, seed=inputs.seed, device=inputs.device)
    return MetricResult(values, {**values, "images": len(inputs.real)})


def table_rows(report: dict[str, float]) -> list[Row]:
    rows = [("SWD x1e3", f"{report['swd']:.2f}", f"mean of levels, {report['images']} images")]
    rows += [(f"  {key.removeprefix('swd_')}px", f"{value:.2f}", "")
             for key, value in report.items() if key.startswith("swd_")]
    return rows
