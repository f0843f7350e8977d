"""Improved precision and recall (Kynkaanniemi et al. 2019) of two sets of (N, D) features.

Each set's manifold is the union of balls around its points, each reaching to the point's
k-th nearest neighbour in the same set (k = 3). Precision is the share of samples inside the
training images' manifold (are the samples realistic?), recall the share of training images
inside the samples' manifold (do the samples cover the data?). Both lie in [0, 1], higher is
better.

The conventions are those of the reference implementation (NVlabs/stylegan2-ada-pytorch,
metrics/precision_recall.py): the radius is the (k + 1)-th smallest distance of a point to its
own set, which counts the point itself (distance 0), and a probe on a ball's surface is inside
(`<=`). Unlike the reference, which uses VGG-16 features in float16, animegan uses the Inception
pool3 features that FID and KID use, in float64: the values are not comparable with published
pr50k3 numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from animegan_cli.metrics import MetricInputs, MetricResult, Row

NHOOD_SIZE = 3  # the paper's and the reference's k
# Distances are computed a block of rows at a time against a whole set: 10,000 x 10,000
# features (2048-d) take about 130 MB beyond the features, not the 800 MB of one float64
# matrix, and about a minute on two CPU cores.
_BLOCK_BYTES = 64 * 1024 * 1024


def knn_radii(manifold: torch.Tensor, k: int = NHOOD_SIZE) -> torch.Tensor:
    """Squared distance from each row of `manifold` to its k-th nearest other row."""
    if not 1 <= k < len(manifold):
        raise ValueError(f"the k-NN radius needs 1 <= k < N, got k={k} and N={len(manifold)}")
    # k + 1: the point itself is the nearest, at distance 0 (the reference's convention, which
    # also keeps an exact duplicate of a point as one of its neighbours).
    return torch.cat([block.kthvalue(k + 1, dim=1).values
                      for block in _squared_distances(manifold, manifold)])


def coverage(manifold: torch.Tensor, probes: torch.Tensor, k: int = NHOOD_SIZE) -> float:
    """Share of `probes` rows inside at least one k-NN ball of `manifold`'s rows."""
    radii = knn_radii(manifold, k)
    inside = sum(int((block <= radii).any(dim=1).sum())
                 for block in _squared_distances(probes, manifold))
    return inside / len(probes)


def precision_recall(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor,
                     k: int = NHOOD_SIZE, device: str | torch.device = "cpu"
                     ) -> tuple[float, float]:
    """(precision, recall) of `fake` features against `real` ones, computed on `device`."""
    r, f = (_float64(x, device) for x in (real, fake))
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"precision and recall need two (N, D) feature sets, got "
                         f"{tuple(r.shape)} and {tuple(f.shape)}")
    return coverage(r, f, k), coverage(f, r, k)


def neighbourhood(real_count: int, fake_count: int) -> int:
    """The k used for sets of these sizes: NHOOD_SIZE, or fewer when a set has no k others."""
    return min(NHOOD_SIZE, real_count - 1, fake_count - 1)


def _float64(x: np.ndarray | torch.Tensor, device: str | torch.device) -> torch.Tensor:
    # float64: the |a|^2 + |b|^2 - 2ab form cancels in float32 (and in the TF32 that training
    # turns on for CUDA matrix products) exactly where two features nearly coincide.
    return torch.as_tensor(x, dtype=torch.float64, device=device)


def _squared_distances(rows: torch.Tensor, cols: torch.Tensor) -> Iterator[torch.Tensor]:
    """Squared L2 distances of blocks of `rows` to every row of `cols`, block by block."""
    step = max(1, _BLOCK_BYTES // (8 * len(cols)))
    col_norms = cols.square().sum(dim=1)
    for start in range(0, len(rows), step):
        block = rows[start:start + step]
        # In place: one block-sized matrix, not four.
        d2 = (block @ cols.T).mul_(-2).add_(col_norms).add_(block.square().sum(dim=1)[:, None])
        yield d2.clamp_min_(0)  # rounding can take a zero distance slightly below 0


def _compute(inputs: MetricInputs) -> tuple[torch.Tensor, torch.Tensor, int]:
    if inputs.real_stats is None or inputs.fake_features is None:
        raise ValueError("precision and recall need Inception features of both sets "
                         "(needs_inception)")
    # float64 products: MPS has none, so only CUDA takes them off the CPU (as for KID).
    device = inputs.device if inputs.device.type == "cuda" else torch.device("cpu")
    real, fake = (_float64(x, device) for x in (inputs.real_stats[2], inputs.fake_features))
    return real, fake, neighbourhood(len(real), len(fake))


def compute_precision(inputs: MetricInputs) -> MetricResult:
    """The registry's precision: share of samples within the training images' manifold."""
    real, fake, k = _compute(inputs)
    value = coverage(real, fake, k)
    return MetricResult({"precision": value}, value)


def compute_recall(inputs: MetricInputs) -> MetricResult:
    """The registry's recall: share of training images within the samples' manifold."""
    real, fake, k = _compute(inputs)
    value = coverage(fake, real, k)
    return MetricResult({"recall": value}, value)


def precision_rows(report: float) -> list[Row]:
    return [("Precision", f"{report:.3f}", "samples that look like training images; higher "
                                           "is better")]


def recall_rows(report: float) -> list[Row]:
    return [("Recall", f"{report:.3f}", "training images the samples cover; higher is better")]
