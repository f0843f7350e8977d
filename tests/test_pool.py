"""prepare's decoding pool: results in file order, workers that die, early stops.

Each scenario runs in a fresh interpreter (tests/children/pool_run.py), which forks its
workers as `animegan prepare` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animegan_cli.data.decode import DecodeOptions, decode_file, pixel_hash

POOL_RUN = Path(__file__).with_name("children") / "pool_run.py"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the scenarios read /proc and use fork")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 images of assorted sizes and formats, and four files that are not images."""
    root = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(5)
    for i in range(40):
        side = int(rng.integers(20, 70))
        pixels = rng.integers(0, 256, (side, side + i % 3, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    (root / "005b.png").write_bytes(b"")
    (root / "017b.jpg").write_text("not an image")
    (root / "023b.png").write_bytes((root / "023.png").read_bytes()[:200])
    (root / "031b.jpg").write_bytes(b"\xff\xd8\xff" + bytes(50))
    return root


def serial(folder: Path) -> list[list]:
    """What one process decoding file after file gives: the reference."""
    opts = DecodeOptions(size=32)
    out = []
    for path in sorted(folder.iterdir()):
        array, reason, detail = decode_file(path, opts)
        out.append([reason, detail, None if array is None else pixel_hash(array)])
    return out


def run_pool(scenario: str, folder: Path, workers: int, chunk: int, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, str(POOL_RUN), scenario, str(folder), str(workers),
                           str(chunk), *extra], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize(("workers", "chunk"), [(2, 1), (2, 3), (3, 7), (2, 64)])
def test_results_equal_the_serial_decoder_in_file_order(folder: Path, workers: int,
                                                        chunk: int) -> None:
    expected = serial(folder)
    assert sum(r[2] is None for r in expected) == 4  # the four bad files are in the mix
    got = run_pool("order", folder, workers, chunk)
    assert got["results"] == expected
    assert got["parents"] == ["self"] * workers  # forked: the fast start
    assert got["alive_after"] == []


def test_a_process_with_threads_starts_its_workers_without_fork(folder: Path) -> None:
    """fork copies one thread of a multi-threaded process, with whatever locks the others
    held (torch's OpenMP pool, rich's refresh thread): the pool uses a forkserver there."""
    got = run_pool("threaded", folder, 2, 5)
    assert got["results"] == serial(folder)
    assert got["parents"] == ["other", "other"]
    assert got["alive_after"] == []


def test_a_file_that_kills_its_worker_is_skipped_as_corrupt_and_the_rest_kept(
        folder: Path) -> None:
    expected = serial(folder)
    names = sorted(p.name for p in folder.iterdir())
    victim = names.index("012.jpg")
    got = run_pool("crash", folder, 2, 5, "012.jpg")
    reason, detail, digest = got["results"][victim]
    assert (reason, digest) == ("corrupt", None)
    assert "decoder process died on this file (killed by SIGSEGV)" in detail
    assert got["results"][:victim] + got["results"][victim + 1:] == \
        expected[:victim] + expected[victim + 1:]
    assert got["alive_after"] == []


def test_a_worker_killed_from_outside_loses_no_file(folder: Path) -> None:
    """Its chunk is retried file by file; no file is blamed for a death that was not its own
    (the killed worker was decoding a chunk of several files)."""
    got = run_pool("kill", folder, 2, 4)
    assert got["results"] == serial(folder)
    assert got["alive_after"] == []


def test_closing_early_ends_the_workers(folder: Path) -> None:
    got = run_pool("close", folder, 2, 2)
    assert len(got["results"]) == 1
    assert got["alive_after"] == []
