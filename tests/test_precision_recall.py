"""Improved precision and recall (animegan_cli.metrics.precision_recall): the maths on real
tensors, against a hand-worked example and a brute-force re-implementation. No network: the
Inception path is tested in test_metrics.py and test_eval_cli.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from animegan_cli.metrics import METRICS, MetricInputs
from animegan_cli.metrics import precision_recall as pr


def _gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def _brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """The definition written out: Euclidean distances one pair at a time, radii by sorting."""

    def coverage(manifold: np.ndarray, probes: np.ndarray) -> float:
        radii = [sorted(np.linalg.norm(manifold - p, axis=1))[k] for p in manifold]
        inside = [any(np.linalg.norm(q - p) <= r for p, r in zip(manifold, radii))
                  for q in probes]
        return sum(inside) / len(probes)

    return coverage(real, fake), coverage(fake, real)


def test_a_set_against_itself_has_precision_and_recall_one() -> None:
    a = _gaussian(300, 64, 0)
    assert pr.precision_recall(a, a) == (1.0, 1.0)
    assert pr.precision_recall(torch.from_numpy(a).float(), a.copy()) == (1.0, 1.0)


def test_well_separated_clouds_have_precision_and_recall_zero() -> None:
    assert pr.precision_recall(_gaussian(300, 32, 1), _gaussian(300, 32, 2, shift=10)) == \
        (0.0, 0.0)


def test_samples_of_one_of_two_modes_are_precise_but_recall_half() -> None:
    real = np.concatenate([_gaussian(200, 2, 3), _gaussian(200, 2, 4, shift=20)])
    fake = _gaussian(400, 2, 5)  # only the first mode
    precision, recall = pr.precision_recall(real, fake)
    assert precision >= 0.95  # samples lie in the mode they share with the data
    # The second mode, half of the training images, is nowhere near any sample.
    assert 0.45 <= recall <= 0.5


def test_a_small_example_worked_by_hand() -> None:
    # Points t on a line, placed at t * (3, 4) so that every distance is 5 times an integer:
    # exact in floating point, so the boundary cases below are decided by `<=` alone.
    def line(*ts: float) -> np.ndarray:
        return np.array([[3 * t, 4 * t] for t in ts], dtype=np.float64)

    # Real t = 0..4. Distances to the others, k = 3 -> radius (the 3rd smallest):
    #   0: 1 2 3 4 -> 3     1: 1 1 2 3 -> 2     2: 1 1 2 2 -> 2     3: -> 2     4: -> 3
    # Balls [-3, 3], [-1, 3], [0, 4], [1, 5], [1, 7]: together [-3, 7].
    # Fake t = 5..10: radii 3 2 2 2 2 3, balls [2, 8], [4, 8], [5, 9], [6, 10], [7, 11],
    # [7, 13]: together [2, 13].
    # Precision: fakes 5, 6, 7 of 6 lie in [-3, 7] (7 on the surface of 4's ball) -> 1/2.
    # Recall: reals 2, 3, 4 of 5 lie in [2, 13] (2 on the surface of 5's ball) -> 3/5.
    real, fake = line(0, 1, 2, 3, 4), line(5, 6, 7, 8, 9, 10)
    assert pr.precision_recall(real, fake) == (0.5, 0.6)
    assert _brute_force(real, fake, 3) == (0.5, 0.6)
    radii = pr.knn_radii(torch.from_numpy(real)).sqrt() / 5
    assert radii.tolist() == [3, 2, 2, 2, 3]
    # With k = 1 every ball reaches only the next point: [-1, 1] ... [3, 5] and [4, 6] ...
    # [9, 11]; fake 5 is inside real 4's ball, reals 4 inside fake 5's.
    assert pr.precision_recall(real, fake, k=1) == (1 / 6, 1 / 5)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("block_rows", [1, 7, 10_000])
def test_blocks_of_any_size_match_a_brute_force_computation(monkeypatch: pytest.MonkeyPatch,
                                                             k: int, block_rows: int) -> None:
    real = _gaussian(37, 5, 6)
    fake = _gaussian(53, 5, 7, shift=0.7) * 1.3  # partly overlapping, different sizes
    expected = _brute_force(real, fake, k)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1  # neither side decided trivially
    # Blocks hold block_rows rows of distances to the larger set (53 columns of float64).
    monkeypatch.setattr(pr, "_BLOCK_BYTES", 8 * 53 * block_rows)
    assert pr.precision_recall(real, fake, k=k) == pytest.approx(expected, abs=1e-12)


def test_ten_thousand_features_are_compared_in_bounded_blocks() -> None:
    rows = torch.zeros(10_000, 4, dtype=torch.float64)
    blocks = pr._squared_distances(rows, rows)
    first = next(blocks)
    step = len(first)
    assert first.shape == (step, 10_000) and first.nbytes <= pr._BLOCK_BYTES
    assert 1 < math.ceil(10_000 / step) == 1 + sum(1 for _ in blocks)


def test_invalid_sets_are_refused() -> None:
    with pytest.raises(ValueError, match="1 <= k < N"):
        pr.knn_radii(torch.zeros(3, 2, dtype=torch.float64), k=3)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        pr.precision_recall(np.zeros((5, 3)), np.zeros((5, 4)))


def test_the_neighbourhood_shrinks_only_for_sets_without_k_others() -> None:
    assert pr.neighbourhood(10_000, 2048) == pr.NHOOD_SIZE == 3
    assert pr.neighbourhood(4, 4) == 3
    assert pr.neighbourhood(3, 100) == pr.neighbourhood(100, 3) == 2
    assert pr.neighbourhood(2, 2) == 1


def test_the_registry_entries_compute_and_show_both_values() -> None:
    real, fake = _gaussian(60, 8, 8), _gaussian(40, 8, 9, shift=0.5)
    mu, sigma = real.mean(axis=0), np.cov(real, rowvar=False)
    inputs = MetricInputs(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8),
                          0, torch.device("cpu"), (mu, sigma, real), fake)
    expected = pr.precision_recall(real, fake)
    for name, value in zip(("precision", "recall"), expected):
        metric = METRICS[name]
        result = metric.compute(inputs)
        assert result.values == {name: value} and result.report == value
        assert 0 <= value <= 1 and metric.needs_inception and not metric.lower_is_better
        (label, shown, note), = metric.rows(value)
        assert label == metric.label and shown == f"{value:.3f}" and "higher is better" in note
    with pytest.raises(ValueError, match="Inception features"):
        METRICS["recall"].compute(MetricInputs(inputs.real, inputs.fake, 0, inputs.device))


def test_tiny_sets_use_fewer_neighbours() -> None:
    # Three samples have only two others each: k falls to 2 rather than failing.
    real, fake = _gaussian(10, 4, 10), _gaussian(3, 4, 11)
    inputs = MetricInputs(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8),
                          0, torch.device("cpu"), (real.mean(0), np.eye(4), real), fake)
    assert METRICS["recall"].compute(inputs).report == pr.precision_recall(real, fake, k=2)[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_values() -> None:
    real, fake = _gaussian(500, 64, 12), _gaussian(700, 64, 13, shift=0.1)
    # Training turns TF32 on for CUDA matrix products; float64 distances are unaffected.
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        assert pr.precision_recall(real, fake, device="cuda") == pr.precision_recall(real, fake)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
