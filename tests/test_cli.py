"""The command line as a user meets it: help, version, and one-line errors for mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import TINY, assert_user_error, run_cli, write_faces

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


def test_help_imports_neither_torch_nor_numpy_nor_pillow() -> None:
    # Every shell completion runs the program: torch costs seconds, numpy and Pillow 100 ms.
    code = ("import sys; from animegan_cli.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'numpy', 'PIL') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


def test_each_command_has_help_with_an_example() -> None:
    for command in ("prepare", "train", "sample", "gif"):
        result = run_cli(command, "--help")
        assert result.code == 0, result
        assert "Example" in result.stdout, command


def test_help_lists_the_choices_and_the_real_defaults() -> None:
    """Choices come from the code's own Literal types, defaults from TrainConfig: help shows
    both, and neither is written by hand."""
    from typing import get_args

    from animegan_cli.device import Device, Precision
    from animegan_cli.image_choices import Crop, Filter, ImageFormat
    from animegan_cli.metrics import EvalMetric
    from animegan_cli.model_config import Arch, ImageSize
    from animegan_cli.train.config import Loss, OnNan, Recipe, TrainConfig

    def listed(choices: object) -> str:
        return "|".join(map(str, get_args(choices)))

    expected = {
        "train": [listed(t) for t in (Loss, Arch, ImageSize, Device, Precision, OnNan,
                                      EvalMetric, Recipe)] + ["hinge|bce|lsgan"],
        "prepare": [listed(Crop), listed(Filter), listed(ImageSize), "center|pad|stretch"],
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


def test_bare_animegan_shows_the_help_and_succeeds() -> None:
    result = run_cli()
    assert result.code == 0, result
    assert "Usage: animegan" in result.stdout and "train" in result.stdout
    assert result.stderr == ""


COMMANDS = ("prepare", "train", "sample", "gif", "info", "eval")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_each_help_text_in_full_and_a_type_for_values_only(
    command: str | None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Help text goes through rich markup, which swallows `[words]`; and a flag takes no value,
    so its row names no type (no `<bool>`, as if `--ema true` were how to use it)."""
    import typer

    from animegan_cli.cli import app, main

    monkeypatch.setenv("COLUMNS", "1000")  # one row per option: nothing wrapped
    main([command, "--help"] if command else ["--help"])
    text = capsys.readouterr().out
    assert "<bool>" not in text
    group = typer.main.get_command(app)
    params = (group.commands[command] if command else group).params  # type: ignore[attr-defined]
    flat = " ".join(text.split())
    for param in params:
        if param.help:  # as written; `\[` is how a bracket is written for rich
            assert " ".join(param.help.replace("\\[", "[").split()) in flat, param.name
        if param.param_type_name != "option":
            continue
        first = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        row = next(line for line in text.splitlines()
                   if line.lstrip("│ *").startswith(f"{first} "))
        assert ((param.metavar or "<") in row) != param.is_flag, row


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


def _fake_engine(monkeypatch: pytest.MonkeyPatch, run: Path, **outcome: object) -> None:
    """`train` with an engine that returns a Summary of `outcome`, or raises outcome["raise"]."""
    from animegan_cli.train import engine

    def fake_train(**_kwargs: object) -> engine.Summary:
        if "raise" in outcome:
            raise outcome["raise"]  # type: ignore[misc]
        fields = {"epochs": 0, "steps": 2, "steps_per_epoch": 4, "resumed_from": 0, **outcome}
        return engine.Summary(run_dir=run, seconds=1.0, images_per_second=32.0,
                              last_checkpoint=RunDir(run).last, **fields)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "train", fake_train)


@pytest.mark.parametrize("outcome, says", [
    ({"epochs": 0, "steps": 2}, "trained 2 steps (0.5 epochs) in"),
    ({"epochs": 3, "steps": 12}, "trained 12 steps (3 epochs) in"),
    ({"epochs": 2, "steps": 11}, "trained 11 steps (2.75 epochs) in"),
    ({"epochs": 0, "steps": 1}, "trained 1 step (0.25 epochs) in"),
    # Resumed with a smaller batch size: the steps of earlier epochs were fewer.
    ({"epochs": 2, "steps": 5}, "trained 5 steps (2+ epochs) in"),
    ({"epochs": 1, "steps": 6, "resumed_from": 6}, "has already trained 6 steps (1.5 epochs)"),
])
def test_train_reports_steps_and_the_epochs_they_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    outcome: dict[str, int], says: str
) -> None:
    from animegan_cli.cli import main

    _fake_engine(monkeypatch, tmp_path / "run", **outcome)
    main(["train", "--demo", "16", "--max-steps", "2", "--out", str(tmp_path / "run")])
    assert says in capsys.readouterr().out


@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_requested_stop_is_not_reported_as_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    signal_name: str, code: int
) -> None:
    from animegan_cli.cli import main
    from animegan_cli.errors import Interrupted

    stop = (f"stopped by {signal_name} at step 3; checkpoint saved. Resume with: animegan train "
            f"--demo 16 --out {tmp_path / 'run'}")
    _fake_engine(monkeypatch, tmp_path / "run", **{"raise": Interrupted(code, stop)})
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--demo", "16", "--out", str(tmp_path / "run")])
    assert exit_.value.code == code
    assert capsys.readouterr().err == f"animegan: {stop}\n"


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


def test_prepare_and_train_take_the_same_sizes(tmp_path: Path) -> None:
    """prepare offers only the sizes train takes, and a size message names only those."""
    from animegan_cli.data.decode import DecodeOptions
    from animegan_cli.data.prepare import PrepareOptions, prepare

    write_faces(tmp_path / "src", 4)
    assert_user_error(run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds", "--size", "48"),
                      "--size", "'32', '64', '128'")
    assert not (tmp_path / "ds").exists()
    # A dataset an older version prepared at 48 px: re-preparing is the only way on.
    prepare(tmp_path / "src", tmp_path / "ds48", PrepareOptions(DecodeOptions(size=48)))
    result = run_cli("train", tmp_path / "ds48", *TINY, "--out", tmp_path / "run")
    assert_user_error(result, "holds 48 px images", "prepare again with --size 32")
    assert "--image-size 48" not in result.stderr


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
