"""Sample-quality metrics: the registry of what animegan measures, and how each is shown.

- SWD (swd.py, Karras et al. 2018, Progressive GAN): sliced Wasserstein distance between 7x7
  patches of the two sets' Laplacian pyramids, x1e3. Needs no network, so it is always
  available and cheap enough to track during training.
- FID and KID (fid_kid.py) on the 2048-d pool3 features of the TensorFlow Inception v3 of
  2015-12-05 (inception.py, loaded only after its SHA-256 matched), the network every
  published FID uses; the training images' statistics are cached beside the dataset.
- Precision and recall (precision_recall.py, Kynkaanniemi et al. 2019, k = 3) on the same
  features: do the samples look like training images, and do they cover all of them?

`METRICS` is the one list of them: `animegan eval` (evaluate.py), the training evaluator, the
epoch line, `--eval-metric` and loss.png all read it. To add a metric, write its compute and
table-rows functions in a module of this package, add its name to `MetricName` (and to
`EvalMetric` when lower is better) and one `Metric` entry to `METRICS`
(tests/test_metric_registry.py checks that they agree).

This module imports neither torch nor numpy: the CLI reads it at start-up, before any command
has decided to pay for torch. Entries therefore name their code as "module.function", imported
at the first call; the heavy modules are imported by whoever uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import numpy as np
    import torch

# Every metric `animegan eval` computes and training logs, in the order they are shown.
MetricName = Literal["swd", "fid", "kid", "precision", "recall"]
METRIC_NAMES: tuple[str, ...] = get_args(MetricName)
# Those that can choose best.safetensors (--eval-metric), which keeps the lowest value: the
# metrics whose lower values are better. Precision and recall are not, and a checkpoint chosen
# by one of them alone would favour realism over coverage or the reverse.
EvalMetric = Literal["swd", "fid", "kid"]
EVAL_METRICS: tuple[str, ...] = get_args(EvalMetric)
Row = tuple[str, str, str]  # a row of `animegan eval`'s table: metric, value, note


@dataclass(frozen=True)
class MetricInputs:
    """One evaluation's images and features: what every metric's compute function takes."""

    real: np.ndarray  # uint8 NHWC training images, for the metrics on pixels
    fake: np.ndarray  # as many samples
    seed: int
    device: torch.device
    # Inception (mu, sigma, features) of the training images and features of the samples;
    # None without the network, when no metric that needs it is computed.
    real_stats: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    fake_features: np.ndarray | None = None


@dataclass(frozen=True)
class MetricResult:
    """What one metric contributes: flat values for training's log (the one named after the
    metric is what --eval-metric compares) and its entry in `animegan eval`'s JSON."""

    values: dict[str, float]
    report: Any


@dataclass(frozen=True)
class Metric:
    """One metric of the registry: how it is computed and how it is shown."""

    name: str
    label: str  # how tables and messages name it
    description: str
    decimals: int  # digits after the point in the epoch line
    colour: tuple[int, int, int]  # its curve in loss.png
    needs_inception: bool
    lower_is_better: bool  # only these are --eval-metric choices (see EvalMetric)
    compute: Callable[[MetricInputs], MetricResult]
    rows: Callable[[Any], list[Row]]  # its rows in `animegan eval`'s table, from its report


def _lazy(target: str) -> Callable[[Any], Any]:
    """The function "module.function" of this package, imported when first called."""
    module, _, function = target.partition(".")

    def call(arg: Any) -> Any:
        return getattr(import_module(f"{__name__}.{module}"), function)(arg)

    return call


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("swd", "SWD", "sliced Wasserstein distance of Laplacian-pyramid patches", decimals=2,
           colour=(44, 160, 44), needs_inception=False, lower_is_better=True,
           compute=_lazy("swd.compute"), rows=_lazy("swd.table_rows")),
    Metric("fid", "FID", "Frechet Inception distance", decimals=2, colour=(148, 103, 189),
           needs_inception=True, lower_is_better=True, compute=_lazy("fid_kid.compute_fid"),
           rows=_lazy("fid_kid.fid_rows")),
    Metric("kid", "KID", "kernel Inception distance, unbiased at any sample count", decimals=4,
           colour=(255, 127, 14), needs_inception=True, lower_is_better=True,
           compute=_lazy("fid_kid.compute_kid"), rows=_lazy("fid_kid.kid_rows")),
    Metric("precision", "Precision", "share of samples within the training images' k-NN "
           "manifold", decimals=3, colour=(23, 190, 207), needs_inception=True,
           lower_is_better=False, compute=_lazy("precision_recall.compute_precision"),
           rows=_lazy("precision_recall.precision_rows")),
    Metric("recall", "Recall", "share of training images within the samples' k-NN manifold",
           decimals=3, colour=(227, 119, 194), needs_inception=True, lower_is_better=False,
           compute=_lazy("precision_recall.compute_recall"),
           rows=_lazy("precision_recall.recall_rows")),
)}


def needs_inception(names: Iterable[str]) -> bool:
    """Whether any of the named metrics needs the Inception network."""
    return any(METRICS[name].needs_inception for name in names)
