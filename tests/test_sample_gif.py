"""`animegan sample` and `animegan gif` on what a real training run wrote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import torch
from conftest import assert_user_error, run_cli, write_faces
from PIL import Image

from animegan_cli import load_generator
from animegan_cli.image_choices import FORMATS, ImageFormat
from animegan_cli.run_dir import RunDir


def test_grid_has_the_expected_geometry(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    result = run_cli("sample", tiny_run / "generator.safetensors", "-n", "12", "--nrow", "4",
                     "-o", out)
    assert result.code == 0, result
    with Image.open(out) as im:
        # 4 columns x 3 rows of 32 px images with 2 px padding around each.
        assert im.size == (4 * 34 + 2, 3 * 34 + 2) and im.mode == "RGB"


def test_same_seed_same_images_other_seed_other_images(tiny_run: Path, tmp_path: Path) -> None:
    ckpt = tiny_run / "checkpoints/last.safetensors"  # the full checkpoint works too
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert run_cli("sample", ckpt, "-n", "8", "--seed", seed, "-o",
                       tmp_path / f"{name}.png").code == 0
    a, b, c = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in "abc")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_individual_files_and_seed_lists(tiny_run: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "each"
    result = run_cli("sample", tiny_run / "generator.safetensors", "-n", "5", "--seed", "10",
                     "--out-dir", out_dir, "--format", "jpg")
    assert result.code == 0, result
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == [f"seed{s:06d}.jpg" for s in range(10, 15)]
    with Image.open(out_dir / names[0]) as im:
        assert im.format == "JPEG" and im.size == (32, 32)
    # --seeds regenerates image 12 alone: identical to the file written inside the batch.
    alone = tmp_path / "alone"
    assert run_cli("sample", tiny_run / "generator.safetensors", "--seeds", "12", "--out-dir",
                   alone).code == 0
    assert run_cli("sample", tiny_run / "generator.safetensors", "-n", "5", "--seed", "10",
                   "--out-dir", tmp_path / "png").code == 0
    one = np.asarray(Image.open(alone / "seed000012.png"), dtype=int)
    batch = np.asarray(Image.open(tmp_path / "png" / "seed000012.png"), dtype=int)
    assert np.abs(one - batch).max() <= 1  # eval-mode BatchNorm: images do not mix


def test_many_images_in_small_batches(tiny_run: Path, tmp_path: Path) -> None:
    result = run_cli("sample", tiny_run / "generator.safetensors", "-n", "300", "--batch-size",
                     "64", "--out-dir", tmp_path / "many")
    assert result.code == 0, result
    assert len(list((tmp_path / "many").iterdir())) == 300


def max_difference(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a.int() - b.int()).abs().max())


def test_python_api(tiny_run: Path) -> None:
    g = load_generator(str(tiny_run / "generator.safetensors"), device="cpu")
    images = g.sample(6, seed=0)
    assert images.shape == (6, 32, 32, 3) and str(images.dtype) == "torch.uint8"
    assert max_difference(images[2], g.sample(1, seed=2)[0]) <= 1
    floats = g.sample(2, seed=0, uint8=False)
    assert floats.shape == (2, 3, 32, 32) and floats.min() >= -1 and floats.max() <= 1
    frames = g.interpolate([0, 1, 2], steps=4)
    assert frames.shape == (12, 32, 32, 3)
    assert max_difference(frames[0], g.sample(1, seed=0)[0]) <= 1  # the walk starts at seed 0
    assert max_difference(frames[4], g.sample(1, seed=1)[0]) <= 1


def test_truncation_reduces_variety(tiny_run: Path) -> None:
    g = load_generator(str(tiny_run / "generator.safetensors"), device="cpu")
    wide = g.sample(64, seed=0, uint8=False).std(dim=0).mean()
    narrow = g.sample(64, seed=0, truncation=0.3, uint8=False).std(dim=0).mean()
    assert narrow < wide


def test_gif_has_one_labelled_frame_per_epoch(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "progress.gif"
    result = run_cli("gif", tiny_run, "-o", out, "--fps", "4")
    assert result.code == 0, result
    with Image.open(out) as im:
        assert im.n_frames == 2
        assert im.info["duration"] == 250 and im.info.get("loop") == 0
        grid = Image.open(tiny_run / "samples/epoch_0001.png")
        assert im.width == grid.width and im.height > grid.height  # the label strip
    unlabelled = tmp_path / "plain.gif"
    assert run_cli("gif", tiny_run, "-o", unlabelled, "--no-label", "--hold-last", "3").code == 0
    with Image.open(unlabelled) as im:
        assert im.size == grid.size and im.n_frames >= 2


def test_gif_default_output_and_numeric_order(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    # epoch_10 must come after epoch_9, which a plain string sort gets wrong.
    for epoch, shade in ((9, 90), (10, 200), (2, 20)):
        Image.new("RGB", (20, 20), (shade, shade, shade)).save(frames / f"epoch_{epoch}.png")
    result = run_cli("gif", frames, "--no-label")
    assert result.code == 0, result
    with Image.open(frames / "result.gif") as im:
        shades = []
        for i in range(im.n_frames):
            im.seek(i)
            shades.append(np.asarray(im.convert("RGB"))[5, 5, 0])
    assert list(shades) == sorted(shades)


def test_gif_of_a_run_uses_its_epoch_grids_and_writes_result_gif(tiny_run: Path,
                                                                 tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")  # a copy: the shared run stays as training left it
    shutil.copytree(RunDir(tiny_run).samples, run.samples)
    Image.new("RGB", (20, 20)).save(run.samples / "notes_7.png")  # not an epoch grid
    result = run_cli("gif", run.root)
    assert result.code == 0, result
    assert f"wrote {run.animation} (2 frames)" in result.stdout
    with Image.open(run.animation) as im:
        assert im.n_frames == len(run.epoch_grids()) == 2


def test_sample_formats_are_the_listed_choices() -> None:
    # --format lists ImageFormat; FORMATS must give every one of them a Pillow name.
    assert tuple(FORMATS) == get_args(ImageFormat)
    assert set(FORMATS.values()) <= set(Image.registered_extensions().values())


@pytest.mark.parametrize("args, fragment", [(["--fps", "0"], "--fps"),
                                            (["-o", "x.avi"], ".gif or .mp4")])
def test_gif_errors(tiny_run: Path, tmp_path: Path, args: list[str], fragment: str) -> None:
    assert_user_error(run_cli("gif", tiny_run, *args, cwd=tmp_path), fragment)


def test_gif_without_frames(tmp_path: Path) -> None:
    assert_user_error(run_cli("gif", tmp_path), "no frames")


def test_a_run_folder_stands_for_its_checkpoints(tiny_run: Path, tmp_path: Path) -> None:
    """sample, info and eval take a run folder as gif does: its generator to sample from, its
    full checkpoint where the discriminator or the training state is needed."""
    run = RunDir(tiny_run)
    for source, name in ((run.root, "run.png"), (run.generator, "file.png")):
        assert run_cli("sample", source, "-n", "4", "-o", tmp_path / name).code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "run.png")),
                          np.asarray(Image.open(tmp_path / "file.png")))
    ranked = run_cli("sample", run.root, "-n", "8", "--rank-by-d", "2", "-o", tmp_path / "d.png")
    assert ranked.code == 0, ranked
    info = run_cli("info", run.root, "--json")
    assert info.code == 0, info
    assert json.loads(info.stdout)["path"] == str(run.last)
    write_faces(tmp_path / "src", 8)
    assert run_cli("prepare", tmp_path / "src", "-o", tmp_path / "ds", "--size", "32").code == 0
    scored = run_cli("eval", run.root, tmp_path / "ds", "-n", "8", "--no-fid", "--json")
    assert scored.code == 0, scored
    assert json.loads(scored.stdout)["checkpoint"] == str(run.generator)


@pytest.mark.parametrize("args", [["sample"], ["sample", "--rank-by-d", "2"], ["info"],
                                  ["gif", "--interpolate"]])
def test_a_folder_without_a_checkpoint_says_what_to_run(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "empty").mkdir()
    command, *options = args
    assert_user_error(run_cli(command, tmp_path / "empty", *options, cwd=tmp_path),
                      "holds no checkpoint", "animegan train")


def test_gif_of_a_checkpoint_asks_for_interpolate(tiny_run: Path, tmp_path: Path) -> None:
    assert_user_error(run_cli("gif", RunDir(tiny_run).generator, cwd=tmp_path), "--interpolate")


def test_one_image_is_written_as_it_is_in_the_format_its_name_says(tiny_run: Path,
                                                                   tmp_path: Path) -> None:
    run = RunDir(tiny_run)
    assert run_cli("sample", run.root, "--seeds", "17", "-o", tmp_path / "face17.jpeg").code == 0
    assert run_cli("sample", run.root, "--seeds", "17", "--out-dir", tmp_path / "each").code == 0
    with Image.open(tmp_path / "face17.jpeg") as im:
        assert im.format == "JPEG" and im.size == (32, 32)  # no grid border
    with Image.open(tmp_path / "each/seed000017.png") as alone, \
            Image.open(tmp_path / "face17.jpeg") as jpeg:
        assert np.abs(np.asarray(alone, dtype=int) - np.asarray(jpeg, dtype=int)).mean() < 8


@pytest.mark.parametrize("args, fragments", [
    (["sample", "-o", "grid.txt"], ["grid.txt", ".png, .jpg, .webp, .jpeg"]),
    (["sample", "-o", "grid"], ["grid", ".png"]),
    (["gif", "--interpolate", "-o", "walk.txt"], ["walk.txt", ".gif or .mp4"]),
    (["gif", "--interpolate", "--seeds", "1,2,3", "--walks", "4"], ["--seeds", "--walks"]),
])
def test_output_names_and_contradictions_are_refused_before_any_work(
        tiny_run: Path, tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    command, *options = args
    assert_user_error(run_cli(command, tiny_run, *options, cwd=tmp_path), *fragments)
    assert not any(tmp_path.iterdir())
