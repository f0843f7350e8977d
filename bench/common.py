"""Shared helpers for the benchmarks in bench/: input folders, machine state, statistics.

Only the standard library is imported at module level. The benchmarks run each measurement in
a fresh child process whose ``__main__`` is the benchmark script; decoding workers started
with 'forkserver' or 'spawn' (where fork is unsafe or missing) re-import ``__main__``, so a
heavy import here would pre-load the workers and flatter (or burden) the figures.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED_EMOJI = REPO.parent / "shared" / "data" / "emoji-google"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "animegan-bench"
CLASS_DIR = "class0"  # torchvision ImageFolder needs one sub-folder per class
BUILD_VERSION = 1  # bump when the way folders are generated changes


# ---- input folders ---------------------------------------------------------------------------

def build_folder(workdir: Path, kind: str, count: int, source: str = "faces",
                 quality: int = 90, grain: float = 3.0) -> Path:
    """A folder `root/class0/*.jpg` of `count` JPEGs, built once and cached in `workdir`.

    kind "small": about 96 px squares (80-112 px), like the common anime-face sets.
    kind "large": about 1024 px (960-1088 wide, 1024 high), faces drawn at 256 px and enlarged,
                  plus gaussian grain of sigma `grain` (3: as much detail to decode as a scan
                  or photo, ~195 KB a file; 0: smooth illustration, ~80 KB).
    source "faces": animegan_cli.data.demo.render_face (anime faces drawn with Pillow).
    source "emoji": the Noto Emoji PNGs of ../shared/data (Apache-2.0, Google), composited
                    on white and resized; falls back to "faces" when the folder is absent.
    Returns `root` (pass it to `animegan prepare` and to ImageFolder alike).
    """
    if source == "emoji" and not SHARED_EMOJI.is_dir():
        print(f"note: {SHARED_EMOJI} not found, using generated faces", file=sys.stderr)
        source = "faces"
    if kind == "small":
        grain = 0.0
    spec = {"kind": kind, "count": count, "source": source, "quality": quality, "grain": grain,
            "version": BUILD_VERSION}
    name = f"{kind}-{source}-{count}-q{quality}" + (f"-grain{grain:g}" if grain else "")
    root = workdir / "inputs" / name
    marker = root / ".spec.json"
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return root
    if root.exists():
        shutil.rmtree(root)
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / CLASS_DIR).mkdir(parents=True)
    t0 = time.perf_counter()
    print(f"building {count} {kind} JPEGs ({source}) in {root} ...", file=sys.stderr, flush=True)
    emoji = sorted(SHARED_EMOJI.glob("*.png")) if source == "emoji" else None
    for i in range(count):
        image = _make_large(i, grain) if kind == "large" else _make_small(i, emoji)
        image.save(tmp / CLASS_DIR / f"{i:06d}.jpg", quality=quality)
    (tmp / ".spec.json").write_text(json.dumps(spec))
    tmp.rename(root)
    print(f"  built in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return root


def _make_small(i: int, emoji: list[Path] | None) -> Any:
    from PIL import Image

    side = 80 + (i * 7919) % 33  # 80..112 px, deterministic
    if emoji is None:
        from animegan_cli.data.demo import render_face

        return render_face(i, side)
    src = Image.open(emoji[i % len(emoji)]).convert("RGBA")
    if (i // len(emoji)) % 2:  # repeats of the same emoji are mirrored, so pixels differ
        src = src.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    canvas = Image.new("RGBA", src.size, (255, 255, 255, 255))
    canvas.alpha_composite(src)
    return canvas.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)


def _make_large(i: int, grain: float) -> Any:
    import numpy as np
    from PIL import Image

    from animegan_cli.data.demo import render_face

    width, height = 960 + (i * 7919) % 129, 1024
    base = render_face(i, 256).resize((width, height), Image.Resampling.BICUBIC)
    if not grain:
        return base
    rng = np.random.default_rng(i)
    noise = rng.normal(0.0, grain, (height, width, 1)).astype(np.float32)
    pixels = np.clip(np.asarray(base, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def list_images(root: Path) -> list[Path]:
    return sorted((root / CLASS_DIR).glob("*.jpg"))


def warm_page_cache(root: Path) -> int:
    """Read every file once so that all variants read from the page cache."""
    total = 0
    for p in list_images(root):
        total += len(p.read_bytes())
    return total


# ---- the engine --------------------------------------------------------------------------------

def engine_trainer(dataset: Path, out: Path, options: dict[str, Any]) -> Any:
    """A built Trainer for `animegan train DATASET --out OUT` with `options` (TrainConfig field
    names), through the engine's public parts: plan, device, Trainer. OUT starts empty."""
    from animegan_cli.device import select_device
    from animegan_cli.train import distributed as dist
    from animegan_cli.train.engine import Trainer
    from animegan_cli.train.plan import RunRequest, make_plan

    shutil.rmtree(out, ignore_errors=True)
    plan = make_plan(RunRequest(str(dataset), 0, out, options))
    return Trainer(plan, select_device(options.get("device", "auto")), dist.from_env())


def engine_step(trainer: Any, real: Any) -> None:
    """One step of `trainer` on `real` as the training loop takes it: the step count moves on,
    which drives lazy R1 (every 16th step) and ADA's adjustment interval."""
    trainer.train_step(real)
    trainer.state.pos.step += 1


# ---- machine state and statistics ------------------------------------------------------------

def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} logical CPUs ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_child(argv: list[str], log: Path | None = None, timeout: float = 900) -> dict[str, Any]:
    """Run `python SCRIPT ARGS` in a fresh process; it prints one JSON object as its last line."""
    stderr = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.run([sys.executable, *argv], stdout=subprocess.PIPE, stderr=stderr,
                              timeout=timeout, cwd=REPO, check=False)
    finally:
        if log:
            stderr.close()
    lines = proc.stdout.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        hint = f"; see {log}" if log else ""
        raise RuntimeError(f"child {argv[:3]} failed with exit code {proc.returncode}{hint}")
    return json.loads(lines[-1])


def fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x != x else f"{x:,.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)
