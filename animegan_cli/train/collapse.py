"""Mode collapse, made visible: how different the epoch grid's samples are from each other,
relative to how different the training images are.

The measure is the mean pairwise RMS pixel distance of the grid's images (the fixed-noise
samples, so successive epochs are comparable) divided by the same for a fixed set of as many
training images: about 1 for a generator as varied as its data, near 0 when every latent draws
the same face. Pixels are a crude space, but collapse is not subtle: the calibration runs are
in docs/quality.md ("Collapse warning").
"""

from __future__ import annotations

import numpy as np
import torch

# Calibration (docs/quality.md, "Collapse warning"): the README demo of earlier versions, one
# face in two hair colours after 20,000 images, sat at 0.18-0.27 through its epochs (0.23 at
# the end); varied runs on the demo faces reached 0.30-0.43 by 6,000-7,500 images. Every run
# starts low (blurry or noisy grids, 0.01-0.24 in the first epochs), so no verdict before
# WARMUP_IMAGES. One collapsed run and a handful of healthy ones: a coarse threshold.
COLLAPSE_RATIO = 0.28
WARMUP_IMAGES = 8_000
REFERENCE_SEED = 0


def diversity(images: np.ndarray) -> float:
    """Mean pairwise RMS distance of uint8 NHWC images, with pixels in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).flatten(1).double() / 255
    distances = torch.cdist(x, x) / x.shape[1] ** 0.5
    n = len(x)
    return float(distances.sum() / max(n * (n - 1), 1))


class CollapseWatch:
    def __init__(self, real: np.ndarray, count: int) -> None:
        rng = np.random.default_rng(REFERENCE_SEED)
        subset = np.sort(rng.choice(len(real), size=min(count, len(real)), replace=False))
        self.reference = max(diversity(real[subset]), 1e-6)

    def ratio(self, samples: np.ndarray) -> float:
        """The samples' diversity as a fraction of the training images'."""
        return diversity(samples) / self.reference

    @staticmethod
    def warning(ratio: float, images_seen: int) -> str | None:
        if ratio >= COLLAPSE_RATIO or images_seen < WARMUP_IMAGES:
            return None
        return (f"[yellow]warning: the epoch grid's samples are near-identical (diversity "
                f"{ratio:.2f} of the training images' after {images_seen:,} images): the "
                "generator has likely collapsed. Try --ada-target 0.6 or a lower --lr-d, or go "
                "back to an earlier checkpoint")
