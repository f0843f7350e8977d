"""Exploring a trained model: latent walks, discriminator ranking, `info`, extra GIF controls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error, run_cli
from PIL import Image

from animegan_cli.models import Discriminator, Generator, ModelConfig, count_parameters


def gif_frames(path: Path) -> list[np.ndarray]:
    frames = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB"), dtype=int))
    return frames


def test_interpolation_gif_loops_back_to_its_start(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "walk.gif"
    result = run_cli("gif", tiny_run / "generator.safetensors", "--interpolate", "--seeds",
                     "0-2", "--steps", "6", "-o", out)
    assert result.code == 0, result
    frames = gif_frames(out)
    assert len(frames) == 18 and frames[0].shape == (32, 32, 3)  # 3 keyframes x 6 steps

    def gap(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).mean())

    # Seamless loop: the last frame is one step away from the first, not a jump.
    steps = [gap(frames[i], frames[i + 1]) for i in range(len(frames) - 1)]
    assert gap(frames[-1], frames[0]) <= 2 * max(steps) + 1
    assert gap(frames[0], frames[9]) > gap(frames[-1], frames[0])
    # The walk passes through seed 1's image at frame 6.
    assert run_cli("sample", tiny_run / "generator.safetensors", "--seeds", "1", "-n", "1",
                   "--nrow", "1", "-o", tmp_path / "one.png").code == 0
    alone = np.asarray(Image.open(tmp_path / "one.png").convert("RGB"), dtype=int)  # no border
    assert gap(frames[6], alone) < 6  # GIF palette quantisation only


def test_grid_of_walks(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "walks.gif"
    result = run_cli("gif", tiny_run / "generator.safetensors", "--interpolate", "--walks", "4",
                     "--keys", "2", "--steps", "3", "--nrow", "2", "-o", out)
    assert result.code == 0, result
    frames = gif_frames(out)
    assert len(frames) == 6 and frames[0].shape == (2 * 34 + 2, 2 * 34 + 2, 3)


def test_rank_by_discriminator(tiny_run: Path, tmp_path: Path) -> None:
    full = tiny_run / "checkpoints/last.safetensors"
    result = run_cli("sample", full, "-n", "24", "--rank-by-d", "4", "--out-dir", tmp_path / "top")
    assert result.code == 0, result
    names = sorted(p.name for p in (tmp_path / "top").iterdir())
    assert len(names) == 4 and all(n.startswith("seed") for n in names)
    # Ranking picks from the 24 generated seeds, and is deterministic.
    assert all(0 <= int(n[4:10]) < 24 for n in names)
    again = run_cli("sample", full, "-n", "24", "--rank-by-d", "4", "--out-dir",
                    tmp_path / "top2")
    assert again.code == 0, again
    assert sorted(p.name for p in (tmp_path / "top2").iterdir()) == names
    assert_user_error(run_cli("sample", tiny_run / "generator.safetensors", "-n", "8",
                              "--rank-by-d", "2", "-o", tmp_path / "x.png"), "no discriminator")


def test_info_on_both_kinds(tiny_run: Path) -> None:
    full = run_cli("info", tiny_run / "checkpoints/last.safetensors", "--json")
    assert full.code == 0, full
    details = json.loads(full.stdout)
    cfg = ModelConfig("dcgan", 32, 100, 8, 8)
    assert details["kind"] == "full" and details["architecture"] == "dcgan"
    assert details["image_size"] == 32 and details["step"] == 8 and details["epoch"] == 2
    assert details["generator_parameters"] == count_parameters(Generator(cfg))
    assert details["discriminator_parameters"] == count_parameters(Discriminator(cfg))
    assert {"G", "D", "G_ema", "opt_g", "opt_d"} <= set(details["contents"])
    assert details["training"]["batch_size"] == 16
    small = json.loads(run_cli("info", tiny_run / "generator.safetensors", "--json").stdout)
    assert small["kind"] == "generator" and small["discriminator_parameters"] is None
    assert small["dataset_fingerprint"] == details["dataset_fingerprint"]
    table = run_cli("info", tiny_run / "generator.safetensors")
    assert table.code == 0 and "EMA generator" in table.stdout


def test_gif_max_frames_size_and_hold(tmp_path: Path) -> None:
    frames_dir = tmp_path / "samples"
    frames_dir.mkdir()
    for epoch in range(1, 11):
        Image.new("RGB", (200, 100), (epoch * 20, 0, 0)).save(frames_dir / f"epoch_{epoch:04d}.png")
    out = tmp_path / "thin.gif"
    result = run_cli("gif", tmp_path, "-o", out, "--max-frames", "4", "--size", "50",
                     "--hold-last", "2", "--no-label")
    assert result.code == 0, result
    frames = gif_frames(out)
    assert len(frames) == 4 and frames[0].shape == (25, 50, 3)
    assert int(frames[0][5, 5, 0]) == 20 and int(frames[-1][5, 5, 0]) == 200  # ends kept
    with Image.open(out) as im:
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
    assert durations == [500, 500, 500, 1500]  # the last frame held 2 frame-times longer


def test_mp4_needs_the_video_extra_or_works(tiny_run: Path, tmp_path: Path) -> None:
    result = run_cli("gif", tiny_run, "-o", tmp_path / "progress.mp4")
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        assert_user_error(result, "animegan-cli[video]")
        return
    assert result.code == 0, result
    assert (tmp_path / "progress.mp4").stat().st_size > 0


@pytest.mark.parametrize("args, fragment", [(["--walks", "0"], "--walks"),
                                            (["--seeds", "3"], "at least 2 seeds")])
def test_walk_errors(tiny_run: Path, tmp_path: Path, args: list[str], fragment: str) -> None:
    assert_user_error(run_cli("gif", tiny_run / "generator.safetensors", "--interpolate", *args,
                              "-o", tmp_path / "w.gif"), fragment)
