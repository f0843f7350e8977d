"""The command line as a user meets it: help, version, and one-line errors for mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import TINY, assert_user_error, run_cli

from animegan_cli import __version__
from animegan_cli.errors import first_line, one_line
from animegan_cli.run_dir import RunDir


def test_version() -> None:
    result = run_cli("--version")
    assert result.code == 0
    assert result.stdout.strip() == f"animegan {__version__}"


def test_help_lists_every_command_and_is_fast() -> None:
    # Best of three, measured around a fresh interpreter, so a busy machine does not flake it.
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "animegan_cli", "--help"],
                              capture_output=True, text=True)
        timings.append(time.perf_counter() - start)
        assert proc.returncode == 0
    for command in ("prepare", "train", "sample", "gif"):
        assert command in proc.stdout
    assert min(timings) < 1.5, timings  # the target is 0.5 s; torch must not be imported


def test_help_does_not_import_torch() -> None:
    code = ("import sys; from animegan_cli.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stdout


def test_each_command_has_help_with_an_example() -> None:
    for command in ("prepare", "train", "sample", "gif"):
        result = run_cli(command, "--help")
        assert result.code == 0, result
        assert "Example" in result.stdout, command


def test_help_lists_the_choices_and_the_real_defaults() -> None:
    """Choices come from the code's own Literal types, defaults from TrainConfig: help shows
    both, and neither is written by hand."""
    from typing import get_args

    from animegan_cli.data.decode import Crop, Filter
    from animegan_cli.device import Device, Precision
    from animegan_cli.images import ImageFormat
    from animegan_cli.metrics import EvalMetric
    from animegan_cli.model_config import Arch, ImageSize
    from animegan_cli.train.config import Loss, OnNan, Recipe, TrainConfig

    def listed(choices: object) -> str:
        return "|".join(map(str, get_args(choices)))

    expected = {
        "train": [listed(t) for t in (Loss, Arch, ImageSize, Device, Precision, OnNan,
                                      EvalMetric, Recipe)] + ["hinge|bce|lsgan"],
        "prepare": [listed(Crop), listed(Filter), "center|pad|stretch"],
        "sample": [listed(ImageFormat), listed(Device), "png|jpg|webp"],
        "gif": [listed(Device)],
        "eval": [listed(Device)],
    }
    for command, fragments in expected.items():
        result = run_cli(command, "--help")
        assert result.code == 0, result
        for fragment in fragments:
            assert fragment in result.stdout, (command, fragment)
    train = run_cli("train", "--help").stdout
    for option, default in (("--batch-size", TrainConfig.batch_size),
                            ("--epochs", TrainConfig.epochs), ("--loss", TrainConfig.loss)):
        line = next(line for line in train.splitlines()
                    if line.lstrip("│ ").startswith(f"{option} "))
        assert f"[default: {default}]" in line, line


def test_train_has_an_option_for_every_setting() -> None:
    import typer

    from animegan_cli.cli import app
    from animegan_cli.train.config import TrainConfig

    train = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    options = {param.name for param in train.params}
    # sample_count (the fixed-noise grid's size) is not offered.
    assert {f.name for f in fields(TrainConfig)} - options == {"sample_count"}


@pytest.mark.parametrize("args, option", [
    (["train", "--demo", "16", "--loss", "wgan"], "--loss"),
    (["train", "--demo", "16", "--arch", "resnet"], "--arch"),
    (["train", "--demo", "16", "--image-size", "48"], "--image-size"),
    (["train", "--demo", "16", "--device", "tpu"], "--device"),
    (["train", "--demo", "16", "--eval-metric", "is"], "--eval-metric"),
    (["prepare", ".", "-o", "ds", "--crop", "zoom"], "--crop"),
    (["prepare", ".", "-o", "ds", "--filter", "nearest"], "--filter"),
    (["sample", "g.safetensors", "--format", "gif"], "--format"),
    (["gif", "g.safetensors", "--interpolate", "--device", "tpu"], "--device"),
])
def test_a_bad_choice_is_one_line(tmp_path: Path, args: list[str], option: str) -> None:
    # Refused while parsing, before anything is read or written.
    assert_user_error(run_cli(*args, cwd=tmp_path), option, "is not one of", "--help")
    assert not any(tmp_path.iterdir())


def test_typed_options_reach_the_engine_even_at_their_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only what was typed is passed, judged by where a value came from: `--batch-size 8` is
    passed although 8 is the default, so it overrides a resumed run's saved batch size."""
    from animegan_cli.cli import main
    from animegan_cli.run_dir import RunDir
    from animegan_cli.train import engine
    from animegan_cli.train.config import TrainConfig

    calls: list[dict[str, object]] = []

    def fake_train(**kwargs: object) -> engine.Summary:
        calls.append(kwargs)
        return engine.Summary(run_dir=tmp_path / "run", epochs=1, steps=2, seconds=1.0,
                              images_per_second=32.0, last_checkpoint=RunDir(tmp_path).last,
                              resumed_from=0, steps_per_epoch=2, is_main=True)

    monkeypatch.setattr(engine, "train", fake_train)
    weights = tmp_path / "inception.pt"
    main(["train", "--demo", "16", "--out", str(tmp_path / "run"), "--batch-size",
          str(TrainConfig.batch_size), "--no-ema", "--loss", "bce", "--inception-weights",
          str(weights)])
    assert calls == [{
        "data": None, "demo": 16, "out": tmp_path / "run", "resume": False, "force": False,
        # TrainConfig field names; paths as str, as the saved config holds them.
        "options": {"batch_size": TrainConfig.batch_size, "ema": False, "loss": "bce",
                    "inception_weights": str(weights)},
    }]
    assert f"samples in {RunDir(tmp_path / 'run').samples}" in capsys.readouterr().out


def test_resume_with_an_option_typed_at_its_default(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--out", run)
    assert first.code == 0, first
    assert "--batch-size" in TINY and TINY[TINY.index("--batch-size") + 1] == "16"
    resumed = run_cli("train", "--demo", "32", "--epochs", "2", "--batch-size", "8", "--out", run)
    assert resumed.code == 0, resumed
    config = json.loads(RunDir(run).config.read_text())["config"]
    assert config["batch_size"] == 8  # typed, so not the saved 16
    assert config["ngf"] == 8  # not typed: the run's own setting


def test_one_line_keeps_hostile_text_to_one_bounded_line() -> None:
    assert one_line("bad\nname\x1b[2J\u2028end", 100) == "bad?name?[2J?end"
    assert one_line("x" * 10, 4) == "xxxx..."
    assert one_line("short", 5) == "short"


def test_first_line_of_an_exception() -> None:
    assert first_line(OSError("No space left\nsecond line")) == "No space left"
    assert first_line(ValueError()) == "ValueError"
    assert first_line(ValueError("y" * 300)) == "y" * 200


def test_missing_folder(tmp_path: Path) -> None:
    assert_user_error(run_cli("train", tmp_path / "nope", *TINY), "does not exist")
    assert_user_error(run_cli("prepare", tmp_path / "nope", "-o", tmp_path / "ds"),
                      "does not exist")


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert_user_error(run_cli("prepare", tmp_path / "empty", "-o", tmp_path / "ds"),
                      "no usable images")
    assert not (tmp_path / "ds").exists()
    assert_user_error(run_cli("train", tmp_path / "empty", *TINY, "--out", tmp_path / "run"),
                      "no usable images")


def test_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    bogus = tmp_path / "model.safetensors"
    bogus.write_text("this is not a checkpoint")
    assert_user_error(run_cli("sample", bogus, "-o", tmp_path / "g.png"), "checkpoint")
    assert not (tmp_path / "g.png").exists()


def test_unknown_option_values(tmp_path: Path) -> None:
    assert_user_error(run_cli("prepare", tmp_path, "-o", tmp_path / "ds", "--size", "1000"),
                      "--size")
    assert_user_error(run_cli("prepare", tmp_path, "-o", tmp_path / "ds", "--size", "0"),
                      "--size")
    assert_user_error(run_cli("train", "--demo", "16", "--no-such-option"), "--help")
    assert_user_error(run_cli("train", "--demo", "16", "--epochs", "many"), "--epochs")


def test_bad_numbers(tmp_path: Path) -> None:
    for args, fragment in ((["--epochs", "0"], "--epochs"), (["--batch-size", "-1"],
                                                             "--batch-size"),
                           (["--batch-size", "500"], "--batch-size")):
        assert_user_error(run_cli("train", "--demo", "32", *TINY[:6], *args, "--out",
                                  tmp_path / "r"), fragment)


def test_out_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    assert_user_error(run_cli("train", "--demo", "16", *TINY, "--out", target), "is a file")
    assert target.read_text() == "keep me"


def test_cuda_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_user_error(run_cli("train", "--demo", "16", *TINY, "--device", "cuda", "--out",
                              tmp_path / "r"), "no CUDA")


def test_train_needs_data_or_demo() -> None:
    assert_user_error(run_cli("train"), "--demo")
