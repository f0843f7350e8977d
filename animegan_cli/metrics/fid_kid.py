"""FID and KID of two sets of (N, D) features: Inception pool3 features in practice.

FID is the Frechet distance of Gaussians fitted to the sets, in float64; KID the unbiased
polynomial-kernel MMD^2 that torch-fidelity computes, averaged over random subsets.
"""

from __future__ import annotations

import numpy as np
import torch

from animegan_cli.metrics import MetricInputs, MetricResult, Row

# torch-fidelity's defaults, which `animegan eval` and training use
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


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


def kid_from_features(a: np.ndarray, b: np.ndarray, subsets: int = KID_SUBSETS,
                      subset_size: int = KID_SUBSET_SIZE, seed: int = 0,
                      device: str | torch.device = "cpu") -> tuple[float, float]:
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


def compute_fid(inputs: MetricInputs) -> MetricResult:
    """The registry's FID: the samples' features against the training images' statistics."""
    (mu, sigma, _), fake = _features(inputs)
    fid = fid_from_stats(mu, sigma, *feature_stats(fake))
    return MetricResult({"fid": fid}, fid)


def compute_kid(inputs: MetricInputs) -> MetricResult:
    """The registry's KID: mean (`kid`) and std (`kid_std`) over KID_SUBSETS subsets."""
    (_, _, real), fake = _features(inputs)
    # float64 matrix products: MPS has no float64, so only CUDA takes them off the CPU.
    device = inputs.device if inputs.device.type == "cuda" else torch.device("cpu")
    mean, std = kid_from_features(real, fake, seed=inputs.seed, device=device)
    return MetricResult({"kid": mean, "kid_std": std},
                        {"mean": mean, "std": std, "subsets": KID_SUBSETS,
                         "subset_size": min(KID_SUBSET_SIZE, len(real), len(fake))})


def _features(inputs: MetricInputs
              ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    if inputs.real_stats is None or inputs.fake_features is None:
        raise ValueError("FID and KID need Inception features of both sets (needs_inception)")
    return inputs.real_stats, inputs.fake_features


def fid_rows(report: float) -> list[Row]:
    return [("FID", f"{report:.2f}", "lower is better")]


def kid_rows(report: dict[str, float]) -> list[Row]:
    return [("KID", f"{report['mean']:.5f}",
             f"+- {report['std']:.5f}, {report['subsets']} x {report['subset_size']}")]
