"""The command line as a user meets it: help, version, and one-line errors for mistakes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY, assert_user_error, run_cli

from animegan_cli import __version__


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


def test_train_help_states_the_defaults_the_engine_uses() -> None:
    """Every "(default: X)" in `train --help` is hand-written: it must not drift from the
    TrainConfig default it describes (as the batch size and loss have changed by measurement)."""
    import re

    import typer

    from animegan_cli.cli import app
    from animegan_cli.train.config import TrainConfig

    config = TrainConfig()
    model = config.model_config()
    train = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    checked = 0
    for param in train.params:
        match = re.search(r"\(default: ([^;,)]+)", param.help or "")
        if not match or not hasattr(config, param.name):
            continue
        stated = match.group(1).strip()
        actual = getattr(config, param.name)
        if actual is None and hasattr(model, param.name):  # widths: the architecture's default
            actual = getattr(model, param.name)
        if actual is None:  # described in words (the Inception file's search order)
            continue
        if isinstance(actual, bool):
            assert stated == ("on" if actual else "off"), (param.name, stated, actual)
        elif isinstance(actual, (int, float)):
            assert float(stated) == actual, (param.name, stated, actual)
        else:
            assert stated == str(actual), (param.name, stated, actual)
        checked += 1
    assert checked >= 20, checked  # the pattern still finds the help texts


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
    assert_user_error(run_cli("train", "--demo", "16", "--arch", "resnet", "--out",
                              tmp_path / "r"), "unknown architecture")
    assert_user_error(run_cli("train", "--demo", "16", "--loss", "wgan", "--out",
                              tmp_path / "r"), "--loss")
    assert_user_error(run_cli("train", "--demo", "16", "--image-size", "48", "--out",
                              tmp_path / "r"), "image size")
    assert_user_error(run_cli("prepare", tmp_path, "-o", tmp_path / "ds", "--crop", "zoom"),
                      "--crop")
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
