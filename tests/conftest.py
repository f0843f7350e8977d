"""Shared fixtures: the real `animegan` command in a subprocess, tiny images and tiny runs.

Every test here runs real torch on real files; what keeps the suite fast is size (32 px
images, 8-channel networks, a few dozen images), not mocking.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from animegan_cli.data.demo import render_face

# The smallest networks that still exercise every layer: 32 px, 8 channels. SWD evaluation
# (on by default) has tests of its own; elsewhere it would only add seconds per epoch.
TINY = ["--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "16",
        "--eval-every", "0"]


class CLIResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def __repr__(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def run_cli(*args: str | os.PathLike[str], cwd: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> CLIResult:
    """Run `animegan ARGS` as a user would, in a fresh process."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "animegan_cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout, env=full_env)
    return CLIResult(proc)


def animegan_command() -> list[str]:
    """The installed `animegan` script beside this interpreter, as a user runs it."""
    script = Path(sys.executable).with_name("animegan")
    return [str(script)] if script.exists() else [sys.executable, "-m", "animegan_cli"]


def assert_user_error(result: CLIResult, *fragments: str) -> None:
    """A user mistake: exit 2, one line on stderr, no traceback, and the line says what to do."""
    assert result.code == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result
    assert lines[0].startswith("animegan: error: "), result
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], result


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                    ) -> None:
    # Raw folders are prepared into a cache; keep each test session's out of the user's home.
    monkeypatch.setenv("ANIMEGAN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def cli() -> Callable[..., CLIResult]:
    return run_cli


def write_faces(folder: Path, count: int, size: int = 48, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"face_{i:03d}.png"
        render_face(i, size).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    """A folder of 40 small demo faces as PNG files."""
    write_faces(tmp_path / "faces", 40)
    return tmp_path / "faces"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real 2-epoch run shared by the tests that only read its outputs."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    result = run_cli("train", "--demo", "64", "--epochs", "2", *TINY, "--out", run)
    assert result.code == 0, result
    return run


def make_rgba_png(path: Path, size: int = 40) -> None:
    """A transparent PNG with an opaque red disc: transparency must become the background."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    from PIL import ImageDraw

    ImageDraw.Draw(image).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4),
                                  fill=(255, 0, 0, 255))
    image.save(path)
