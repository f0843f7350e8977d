"""Hostile environments: a full disk, read-only data, unwritable outputs. Nothing may be lost."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, assert_user_error, run_cli, write_faces

from animegan_cli.checkpoint import open_checkpoint
from animegan_cli.data.packed import open_dataset


def run_with_file_limit(limit: int, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run animegan where no file may grow past `limit` bytes: a full disk, simulated."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "animegan_cli", *map(str, args)],
                          preexec_fn=cap, capture_output=True, text=True, timeout=300)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("animegan: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_full_disk_during_training_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_cli("train", "--demo", "32", "--epochs", "1", *TINY, "--out", run).code == 0
    last = run / "checkpoints/last.safetensors"
    before = last.read_bytes()
    proc = run_with_file_limit(200_000, "train", "--demo", "32", "--epochs", "2", "--out", run)
    assert "disk space" in one_error_line(proc)
    assert last.read_bytes() == before
    assert open_checkpoint(last).meta["step"] == "2"
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".partial")]
    # With room again, the run resumes from the intact checkpoint.
    resumed = run_cli("train", "--demo", "32", "--epochs", "2", "--out", run)
    assert resumed.code == 0 and "resuming at step 2" in resumed.stderr, resumed


def test_full_disk_during_prepare_leaves_no_dataset(tmp_path: Path) -> None:
    write_faces(tmp_path / "src", 30)
    proc = run_with_file_limit(20_000, "prepare", tmp_path / "src", "-o", tmp_path / "ds",
                               "--size", "32", "--workers", "1")
    assert "disk space" in one_error_line(proc)
    assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_read_only_dataset_trains(tmp_path: Path) -> None:
    write_faces(tmp_path / "src", 20)
    ds = tmp_path / "ds"
    assert run_cli("prepare", tmp_path / "src", "-o", ds, "--size", "32").code == 0
    for path in (*ds.iterdir(), ds):
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IXUSR | (stat.S_IXGRP if path == ds
                                                                   else 0))
    try:
        result = run_cli("train", ds, "--epochs", "1", *TINY[2:], "--out", tmp_path / "run")
        assert result.code == 0, result
        assert len(open_dataset(ds)) == 20
    finally:
        for path in (ds, *ds.iterdir()):
            path.chmod(0o755)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_unwritable_out_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_user_error(run_cli("train", "--demo", "16", *TINY, "--out", locked / "run"),
                          "writable")
    finally:
        locked.chmod(0o755)


def test_out_inside_a_file_path(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    assert_user_error(run_cli("train", "--demo", "16", *TINY, "--out", blocker / "run"),
                      "writable")
    assert blocker.read_text() == "a file where a folder should be"
