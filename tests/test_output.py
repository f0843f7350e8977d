"""What commands print: JSON summaries for scripts, --quiet, progress on long jobs, logs that a
pipe does not wrap, and `sample --out-dir` files that are whole."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TINY, run_cli
from PIL import Image

from animegan_cli.gif import write_walk
from animegan_cli.sample import load_generator, sample_to_files


def test_train_json_summary_and_quiet(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("train", "--demo", "32", *TINY, "--max-steps", "3", "--out", run, "--quiet",
                     "--json")
    assert result.code == 0, result
    assert result.stderr == ""  # --quiet: no start line, no epoch line
    summary = json.loads(result.stdout)
    assert summary["steps"] == 3 and summary["steps_this_session"] == 3
    assert summary["epochs"] == 1.5  # 32 images at batch 16: 2 steps an epoch
    assert Path(summary["checkpoint"]).is_file() and Path(summary["generator"]).is_file()
    assert summary["run_dir"] == str(run)

    quiet = run_cli("train", "--demo", "32", "--max-steps", "4", "--out", run, "-q")
    assert quiet.code == 0, quiet
    assert quiet.stdout == "" and quiet.stderr == ""


def test_logs_are_not_wrapped_or_padded_in_a_pipe(tmp_path: Path) -> None:
    # A narrow terminal width must not matter when stderr is a pipe (a CI log, `2> log.txt`).
    run = tmp_path / "a-run-folder-with-a-rather-long-name-to-push-the-line-past-forty-columns"
    result = run_cli("train", "--demo", "32", *TINY, "--max-steps", "2", "--out", run,
                     env={"COLUMNS": "40"})
    assert result.code == 0, result
    start = [line for line in result.stderr.splitlines() if "starting step 0/2" in line]
    assert len(start) == 1 and start[0].endswith(f"-> {run}"), result.stderr
    assert all(line == line.rstrip() for line in result.stderr.splitlines())  # no padding


def test_sample_json_summary_and_whole_files(tiny_run: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "fakes"
    result = run_cli("sample", tiny_run, "-n", "20", "--seed", "5", "--out-dir", out_dir,
                     "--json")
    assert result.code == 0, result
    summary = json.loads(result.stdout)
    assert summary["images"] == 20 and summary["seeds"] == list(range(5, 25))
    assert sorted(summary["files"]) == sorted(str(p) for p in out_dir.iterdir())
    assert not list(out_dir.glob(".*"))  # no temporary files left behind
    for path in out_dir.iterdir():
        with Image.open(path) as image:
            image.load()  # whole, decodable files
            assert image.size == (32, 32)

    quiet = run_cli("sample", tiny_run, "-n", "4", "-o", tmp_path / "g.png", "--quiet")
    assert quiet.code == 0 and quiet.stdout == "" and quiet.stderr == "", quiet
    assert (tmp_path / "g.png").is_file()


def test_long_jobs_report_progress_to_the_end(tiny_run: Path, tmp_path: Path) -> None:
    gen = load_generator(tiny_run, "cpu")
    calls: list[tuple[int, int]] = []
    files = sample_to_files(gen, seeds=list(range(10)), out=None, out_dir=tmp_path / "s",
                            nrow=0, truncation=None, fmt="png", batch_size=4,
                            progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 10), (8, 10), (10, 10)] and len(files) == 10

    frames: list[tuple[int, int]] = []
    count = write_walk(gen, walks=[[0, 1], [2, 3]], steps=3, nrow=0, out=tmp_path / "w.gif",
                       fps=10, loop=0, size=None,
                       progress=lambda done, total: frames.append((done, total)))
    # Both walks' frames count against one total; the GIF shows the walks side by side.
    assert count == 6 and (tmp_path / "w.gif").is_file()
    assert frames[-1] == (12, 12) and all(total == 12 for _, total in frames)
    assert [done for done, _ in frames] == sorted(done for done, _ in frames)


def test_prepare_json_summary_and_quiet(faces: Path, tmp_path: Path) -> None:
    (faces / "broken.png").write_bytes(b"not a png")
    result = run_cli("prepare", faces, "-o", tmp_path / "ds", "--size", "32", "--json")
    assert result.code == 0, result
    summary = json.loads(result.stdout)
    assert summary["kept"] == 40 and summary["skipped"] == {"not_image": 1}, summary
    assert summary["up_to_date"] is False and summary["size"] == 32
    again = run_cli("prepare", faces, "-o", tmp_path / "ds", "--size", "32", "-q")
    assert again.code == 0 and again.stdout == "" and again.stderr == "", again
