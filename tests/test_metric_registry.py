"""The metric registry (animegan_cli.metrics.METRICS): consistent, torch-free, and all that
`animegan eval`, the training evaluator and loss.png need to show a metric."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import torch
from PIL import Image

from animegan_cli.errors import UserError
from animegan_cli.evaluate import TrainingEvaluator, result_table
from animegan_cli.metrics import (
    EVAL_METRICS,
    METRIC_NAMES,
    METRICS,
    EvalMetric,
    Metric,
    MetricInputs,
    MetricName,
    MetricResult,
    needs_inception,
)
from animegan_cli.models import Generator, ModelConfig
from animegan_cli.train.config import TrainConfig
from animegan_cli.train.logs import LOSS_COLOURS, plot_losses


def test_the_literals_and_the_registry_name_the_same_metrics_in_order() -> None:
    assert get_args(MetricName) == METRIC_NAMES == tuple(METRICS)
    # --eval-metric keeps the lowest value: only metrics whose lower values are better.
    assert get_args(EvalMetric) == EVAL_METRICS == tuple(
        name for name, metric in METRICS.items() if metric.lower_is_better)
    assert EVAL_METRICS == ("swd", "fid", "kid")
    assert EVAL_METRICS[0] == "swd"  # the default --eval-metric needs no network
    assert [m.name for m in METRICS.values() if not m.lower_is_better] == ["precision", "recall"]


@pytest.mark.parametrize("name", ["precision", "recall"])
def test_higher_is_better_metrics_cannot_choose_the_best_checkpoint(name: str) -> None:
    with pytest.raises(UserError, match="--eval-metric .* is not one of: swd, fid, kid"):
        TrainConfig(eval_metric=name).validate()


def test_every_entry_is_complete_and_drawn_in_a_colour_of_its_own() -> None:
    for name, metric in METRICS.items():
        assert metric.name == name and metric.label and metric.description
        assert isinstance(metric.needs_inception, bool)
        assert isinstance(metric.lower_is_better, bool)
        assert isinstance(metric.decimals, int) and 0 <= metric.decimals <= 8
        assert len(metric.colour) == 3 and all(0 <= c <= 255 for c in metric.colour)
        assert callable(metric.compute) and callable(metric.rows)
    colours = [m.colour for m in METRICS.values()] + list(LOSS_COLOURS.values())
    assert len(set(colours)) == len(colours)


def test_needs_inception() -> None:
    assert not needs_inception([]) and not needs_inception(["swd"])
    assert needs_inception(["fid"]) and needs_inception(["swd", "kid"])
    assert [m.name for m in METRICS.values() if not m.needs_inception] == ["swd"]
    assert needs_inception(["precision"]) and needs_inception(["recall"])


def test_importing_the_registry_imports_neither_torch_nor_numpy() -> None:
    code = ("import sys, animegan_cli.metrics as m; m.needs_inception(m.EVAL_METRICS); "
            "print('torch' in sys.modules, 'numpy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == ["False", "False"], proc.stderr


@pytest.fixture
def lpips(monkeypatch: pytest.MonkeyPatch) -> Metric:
    """A fourth metric, registered by one entry for the length of a test."""

    def compute(inputs: MetricInputs) -> MetricResult:
        value = float(np.abs(inputs.real.astype(float) - inputs.fake).mean())
        return MetricResult({"lpips": value}, {"value": value, "images": len(inputs.real)})

    metric = Metric("lpips", "LPIPS", "a stand-in", decimals=3, colour=(1, 2, 250),
                    needs_inception=False, lower_is_better=True, compute=compute,
                    rows=lambda report: [("LPIPS", f"{report['value']:.3f}",
                                          f"{report['images']} images")])
    monkeypatch.setitem(METRICS, "lpips", metric)
    return metric


class _InMemory:
    def __init__(self, images: np.ndarray) -> None:
        self.images, self.fingerprint, self.path = images, "in-memory", None


def test_one_entry_adds_a_metric_to_training_the_table_and_loss_png(lpips: Metric,
                                                                    tmp_path: Path) -> None:
    config = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8)
    torch.manual_seed(0)
    faces = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    values = TrainingEvaluator(_InMemory(faces), config.nz, torch.device("cpu"),
                               swd_samples=8)(Generator(config))
    assert values["lpips"] > 0 and values["swd"] > 0 and "fid" not in values

    result = {"checkpoint": "G", "dataset": "D", "samples": 8, "warnings": [], "nearest": None,
              "swd": {"swd_32": 1.0, "swd_16": 3.0, "swd": 2.0, "images": 8}, "fid": None,
              "kid": None, "precision": None, "recall": None,
              "lpips": {"value": 0.25, "images": 8}, "fid_skipped": "no network"}
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(result_table(result))
    text = console.export_text()
    assert "LPIPS" in text and "0.250" in text and "FID / KID / Precision / Recall" in text

    records = [{"step": s, "loss_d": 1.0 / s, "loss_g": 2.0} for s in range(1, 9)]
    records += [{"step": s, "epoch": s // 4, **values} for s in (4, 8)]
    plot_losses(records, tmp_path / "loss.png")
    with Image.open(tmp_path / "loss.png") as image:
        assert image.height == 3 * 220  # losses, SWD, LPIPS
        assert lpips.colour in {c for _, c in image.getcolors(1 << 16)}


def test_loss_png_has_a_panel_in_its_colour_for_every_registered_metric(tmp_path: Path) -> None:
    records = [{"step": s, "loss_d": 1.0, "loss_g": 1.0 + s, **{k: float(s) for k in METRICS}}
               for s in range(1, 5)]
    plot_losses(records, tmp_path / "loss.png")
    with Image.open(tmp_path / "loss.png") as image:
        assert image.height == (1 + len(METRICS)) * 220
        colours = {c for _, c in image.getcolors(1 << 16)}
    assert all(m.colour in colours for m in METRICS.values())
