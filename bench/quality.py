"""Training recipes compared by the quality they reach with the same CPU time, over several sets.

    python bench/quality.py --sets faces,emoji --budget B1 --seeds 0 --samples 1024 \\
        --recipes canonical,defaults,ema-hinge --parallel 2     # a pilot of candidates
    python bench/quality.py --budget both --seeds 0,1 --grids docs --parallel 2
        # the final table: all three sets, two seeds at B1 and the first seed at B2

Users pay in minutes, not images, and a default must suit more than one kind of data, so each
recipe trains the canonical DCGAN (ngf = ndf = 64, nz = 100, 64x64) with `animegan train` for
the same CPU time on each set, and is scored with `animegan eval` on the same latent seeds:
FID and KID (Inception, when installed) and SWD. The sets (--sets, prepared once at 64 px into
the workdir with `animegan prepare`, transparency composited on white):

    faces  ../shared/data/emoji-google-faces: 298 face emoji, the small-set regime
    emoji  ../shared/data/emoji-google: the 3,786 Noto Emoji PNGs
    demo   the 2,000 built-in demo faces (`animegan prepare --demo 2000`)
    NAME=PATH  any other image folder or prepared dataset

Budgets are CPU seconds of the `animegan train` process (user + system time of all its threads,
from /proc/PID/stat). B1 for a set is what "canonical" spends on 20 epochs of it, capped at
--budget-cap (600 CPU-s); B2 = 4 x B1. B1 is measured first, by training canonical for
`--epochs 20` (that run is canonical's B1 cell for the first seed), and kept in
WORKDIR/budgets.json for later invocations. Every other cell (set, recipe, budget, seed) trains
with `--epochs 100000` until its CPU time reaches the budget, when it gets SIGINT: `animegan
train` finishes the step, saves a checkpoint and exits with 130. Measuring CPU time rather than
wall time keeps cells that train side by side (--parallel) fair, and charges each recipe for
everything it does: the process start, small batches' per-step overhead, EMA, checkpoints at
every epoch (OpenMP threads that spin while waiting count too, so run it on an otherwise idle
machine: other load makes them wait, and spin, longer). Training runs with --eval-every 0:
the periodic evaluation changes no weight but would burn budget.

"canonical" is pytorch/examples' dcgan recipe: BCE, Adam 2e-4 with betas (0.5, 0.999), batch
64, no EMA, no augmentation; "defaults" is `animegan train` with no recipe option at all. A new
recipe is one line in RECIPES. Canonical is always trained, since every ratio is against it.

Run folders are keyed by set, recipe, budget, seed and a hash of the recipe and the package's
defaults; re-running with the same --workdir reuses finished cells, continues interrupted ones
(and ones whose budget grew), and --fresh retrains and re-measures B1. --budget both runs every
--seeds at B1 and the first seed only at B2. Prints per budget a markdown table of the scores
(means over seeds), one of images seen, CPU seconds and images/s, and one of KID and FID ratios
to canonical per set with their geometric mean over the sets, then the command that reproduces
it; saves each cell's 8x8 sample grid (--grids DIR) and writes everything to
WORKDIR/quality.json. --parallel N trains N cells at once with the cores shared out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

# pytorch/examples/dcgan's settings: the preset of `animegan train --recipe canonical`, in fp32
# as main.py runs (animegan's --precision auto may pick bf16 autocast on CPUs with native bf16).
CANONICAL = ["--recipe", "canonical", "--precision", "fp32"]
# Every recipe pins the image size and latent (a recipe may change --arch or the widths, which
# come later on the command line and win); the widths are part of a recipe (canonical: 64,
# the defaults: dcgan's default width).
NETWORKS = ["--arch", "dcgan", "--image-size", "64", "--nz", "100"]
SHARED_DATA = common.SHARED_EMOJI.parent
SETS = {"faces": SHARED_DATA / "emoji-google-faces", "emoji": common.SHARED_EMOJI, "demo": None}
DEMO_IMAGES = 2000
CALIBRATION_EPOCHS = 20
B2_FACTOR = 4
POLL_S = 0.5


def _with(base: list[str], **changes: str | None) -> list[str]:
    """`base` with options replaced (value None: a flag such as --ema)."""
    out = list(base)
    for key, value in changes.items():
        flag = "--" + key.replace("_", "-")
        negated = "--no-" + flag[2:]
        if negated in out:
            out.remove(negated)
        if flag in out:
            i = out.index(flag)
            del out[i:i + 2]
        out += [flag] if value is None else [flag, value]
    return out


RECIPES: dict[str, list[str]] = {
    "canonical": CANONICAL,
    "defaults": [],
    "ema": _with(CANONICAL, ema=None),
    "ema-aug": _with(CANONICAL, ema=None, augment=None),
    "ema-mirror": _with(CANONICAL, ema=None, mirror=None),
    "ema-hinge": _with(CANONICAL, ema=None, loss="hinge"),
    "ema-b128": _with(CANONICAL, ema=None, batch_size="128"),
    "ema-ttur": _with(CANONICAL, ema=None, lr_g="1e-4", lr_d="4e-4"),
    "ema-smooth": _with(CANONICAL, ema=None, label_smoothing="0.1"),
    "defaults-b32": _with([], batch_size="32"),
    "defaults-b16": _with([], batch_size="16"),
    "defaults-b8": _with([], batch_size="8"),
    "defaults-b16-sn": _with([], batch_size="16", spectral_norm=None),
    "defaults-sn": _with([], spectral_norm=None),
    "defaults-mirror": _with([], mirror=None),
    "ada": _with([], ada_target="0.6"),
    "r1": _with([], r1_gamma="1"),
    "fp32": _with([], precision="fp32"),
    "bf16": _with([], precision="bf16"),
    "bf16-b16": _with([], precision="bf16", batch_size="16"),
    "bf16-b32": _with([], precision="bf16", batch_size="32"),
    "r1-01": _with([], r1_gamma="0.1"),
    "resize": _with([], arch="resize"),
    "ada-r1": _with([], ada_target="0.6", r1_gamma="1"),
    "ada-resize": _with([], ada_target="0.6", arch="resize"),
    "ada-r1-resize": _with([], ada_target="0.6", r1_gamma="1", arch="resize"),
    # The defaults before narrow networks and lr 4e-4 (2026-12-05), and the pilot's candidates.
    "wide": _with([], ngf="64", ndf="64", lr_g="2e-4", lr_d="2e-4"),
    "narrow": _with([], ngf="32", ndf="32"),
    "lr4": _with([], lr_g="4e-4", lr_d="4e-4"),
    "betas0": _with([], beta1="0", beta2="0.99"),  # StyleGAN's Adam
    "rpgan": _with([], loss="rpgan"),  # R3GAN's relativistic pairing loss with R1 + R2
    "narrow-lr4": _with([], ngf="32", ndf="32", lr_g="4e-4", lr_d="4e-4"),
}

ABORT = threading.Event()  # set on the first failure or Ctrl-C: running trainings get SIGINT
LOCK = threading.Lock()  # guards budgets.json


class Interrupted(Exception):
    """A training stopped by someone else's signal (Ctrl-C, ABORT); its checkpoint is saved."""


@dataclass(frozen=True)
class Cell:
    set: str
    recipe: str
    budget: str  # "B1" or "B2"
    seed: int

    @property
    def name(self) -> str:
        return f"{self.set}-{self.recipe}-{self.budget}-s{self.seed}"


def animegan(*args: str, log: Path, threads: int | None = None) -> str:
    """Run the installed CLI; its stdout, or exit with its log on failure."""
    command = [sys.executable, "-m", "animegan_cli", *args]
    with open(log, "a") as err:
        err.write(f"$ {shlex.join(command)}\n")
        err.flush()
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, text=True,
                              check=False, env=_env(threads))
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {shlex.join(command)}; see {log}")
    return proc.stdout


def _env(threads: int | None) -> dict[str, str]:
    return {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}


# ---- CPU time ------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a live process (all its threads), in seconds."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()  # fields 14-17 of proc(5) are [11:15] after comm
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


def train_for(command: list[str], log: Path, threads: int | None,
              budget_s: float) -> tuple[float, float, bool]:
    """Run `animegan train` until it exits or has used `budget_s` CPU seconds, then SIGINT it.

    Returns (CPU seconds, wall seconds, whether the budget stopped it). SIGINT goes only once
    the training loop has begun (its start line has been in the log for a poll), so that it
    always saves a checkpoint; a run still starting up when its budget is spent stops after at
    most one step. The final CPU time comes from wait4's rusage (the process and its children).
    """
    with open(log, "a") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        offset = out.tell()
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=out, env=_env(threads))
    sent = started = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if not sent and (ABORT.is_set() or cpu_seconds(proc.pid) >= budget_s):
            if started or ABORT.is_set():
                proc.send_signal(signal.SIGINT)
                sent = True
            else:
                started = _new_text(log, offset, ("starting step", "resuming at step"))
        time.sleep(POLL_S)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    wall_s = time.perf_counter() - t0
    cpu_s = usage.ru_utime + usage.ru_stime
    saved = code == 0 or (code == 130 and _new_text(log, offset, ("stopped by SIGINT",)))
    if not saved:
        sys.exit(f"failed ({code}): {shlex.join(command)}; see {log}")
    if code == 130 and (not sent or ABORT.is_set()):
        raise Interrupted(cpu_s, wall_s)
    return cpu_s, wall_s, code == 130


def _new_text(log: Path, offset: int, needles: tuple[str, ...]) -> bool:
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return any(n in text for n in needles)


# ---- data sets -----------------------------------------------------------------------------

def parse_sets(text: str) -> dict[str, Path | None]:
    sets: dict[str, Path | None] = {}
    for item in text.split(","):
        name, _, path = item.partition("=")
        if path:
            sets[name] = Path(path).expanduser()
        elif name in SETS:
            sets[name] = SETS[name]
        else:
            raise ValueError(f"unknown set {name!r}: choose from {', '.join(SETS)} or NAME=PATH")
    return sets


def prepare_set(name: str, source: Path | None, workdir: Path, log: Path) -> Path:
    """The set as a 64 px prepared dataset in the workdir, prepared once."""
    if source is not None and (source / "manifest.json").is_file():
        return source  # already a prepared dataset
    data = workdir / "data" / f"{name}-64"
    if (data / "manifest.json").is_file():  # `animegan prepare` renames it into place when done
        return data
    if source is None:  # the built-in demo faces, as PNG files first
        source = workdir / "data" / f"demo-{DEMO_IMAGES}-png"
        if len(list(source.glob("*.png"))) != DEMO_IMAGES:
            shutil.rmtree(source, ignore_errors=True)
            animegan("prepare", "--demo", str(DEMO_IMAGES), "-o", str(source), "--size", "64",
                     log=log)
    print(f"[{time.strftime('%H:%M:%S')}] preparing {name} from {source}", flush=True)
    animegan("prepare", str(source), "-o", str(data), "--size", "64", log=log)
    return data


def dataset_size(data: Path) -> int:
    return int(json.loads((data / "manifest.json").read_text())["count"])


# ---- runs ----------------------------------------------------------------------------------

def batch_size_of(run: Path) -> int:
    """The batch size the run trained with, as its config.json records it (a recipe may set
    it through a preset such as --recipe canonical)."""
    from animegan_cli.run_dir import RunDir

    return int(json.loads(RunDir(run).config.read_text())["config"]["batch_size"])


def run_key(recipe: list[str], device: str = "cpu") -> str:
    """Short hash of the settings `recipe` trains with (the package's defaults under its
    options, --precision auto resolved for `device`): a run folder is reused only for the same
    effective settings, so changing a default retrains "defaults", and a recipe that spells out
    what later became the default keeps its runs."""
    import torch

    from animegan_cli.device import resolve_precision
    from animegan_cli.train.config import TrainConfig, resolve

    defaults, options, args = TrainConfig(), {}, [*NETWORKS, *recipe]
    while args:
        name = args.pop(0)[2:].replace("-", "_")
        if name.startswith("no_") and not hasattr(defaults, name):
            options[name[3:]] = False
        elif isinstance(getattr(defaults, name), bool):
            options[name] = True
        else:
            kind = float if isinstance(getattr(defaults, name), float) else \
                int if name in ("ngf", "ndf") or isinstance(getattr(defaults, name), int) else str
            options[name] = kind(args.pop(0))
    config = resolve(options)
    model = config.model_config()  # widths left to the architecture: the ones it trains with
    config = replace(config, ngf=model.ngf, ndf=model.ndf,
                     precision=resolve_precision(config.precision, torch.device(device)))
    return hashlib.sha256(config.to_json().encode()).hexdigest()[:8]


def checkpoint_step(run: Path) -> int | None:
    last = run / "checkpoints" / "last.safetensors"
    if not last.is_file():
        return None
    from animegan_cli.checkpoint import open_checkpoint

    return int(open_checkpoint(last).meta["step"])


class Bench:
    def __init__(self, args: argparse.Namespace, data: dict[str, Path]) -> None:
        self.args, self.data = args, data
        # With --parallel 1 the thread count is the environment's (OMP_NUM_THREADS, else all).
        self.threads = (max(1, (os.cpu_count() or 1) // args.parallel) if args.parallel > 1
                        else int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
        self.budgets_file = args.workdir / "budgets.json"
        self.budgets: dict[str, Any] = (json.loads(self.budgets_file.read_text())
                                        if self.budgets_file.is_file() else {})
        self.freshened: set[Path] = set()  # run folders already cleared by --fresh

    # -- folders and per-cell state

    def run_dir(self, cell: Cell) -> Path:
        key = run_key(RECIPES[cell.recipe], self.args.device)
        folder = f"{key}-{cell.budget}-s{cell.seed}"  # by what trains, not by the recipe's name
        return self.args.workdir / "runs" / cell.set / folder

    def log(self, cell: Cell) -> Path:
        return self.args.workdir / "logs" / f"{cell.name}.log"

    def state(self, run: Path) -> dict[str, Any]:
        path = run.with_name(run.name + ".json")
        return json.loads(path.read_text()) if path.is_file() else {}

    def save_state(self, run: Path, state: dict[str, Any]) -> None:
        path = run.with_name(run.name + ".json")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)

    def clear(self, run: Path) -> None:
        shutil.rmtree(run, ignore_errors=True)
        run.with_name(run.name + ".json").unlink(missing_ok=True)

    # -- budgets

    def budget_s(self, cell: Cell) -> float:
        b1 = self.b1(cell.set)
        assert b1 is not None, cell
        return b1 if cell.budget == "B1" else B2_FACTOR * b1

    def b1(self, name: str) -> float | None:
        """B1 from budgets.json, or None when it must be (re-)measured under this cap."""
        cap = self.args.budget_cap
        entry = self.budgets.get(name)
        if not entry:
            return None
        if entry["epochs_cpu_s"] is not None:  # 20 epochs were trained within the cap then
            return min(entry["epochs_cpu_s"], cap)
        return cap if entry["capped_at"] >= cap else None

    def calibrate(self, name: str) -> None:
        """Measure B1: canonical for 20 epochs, stopped at the cap (canonical's B1 cell)."""
        cap = self.args.budget_cap
        cell = Cell(name, "canonical", "B1", self.args.seed_list[0])
        print(f"[{time.strftime('%H:%M:%S')}] {name}: measuring B1 (canonical, "
              f"{CALIBRATION_EPOCHS} epochs of {dataset_size(self.data[name]):,} images, "
              f"at most {cap:g} CPU-s)", flush=True)
        state = self.train(cell, cap, epochs=CALIBRATION_EPOCHS)
        capped = state["stopped_by_budget"]
        entry = {"epochs_cpu_s": None if capped else state["cpu_s"],
                 "capped_at": cap if capped else None, "threads": self.threads,
                 "canonical_key": run_key(CANONICAL, self.args.device),
                 "date": time.strftime("%Y-%m-%d %H:%M")}
        with LOCK:
            self.budgets[name] = entry
            self.budgets_file.write_text(json.dumps(self.budgets, indent=1))
        b1 = self.b1(name)
        state["budget_s"] = b1
        self.save_state(self.run_dir(cell), state)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: B1 = {b1:.1f} CPU-s"
              f"{' (the cap)' if capped else f' ({CALIBRATION_EPOCHS} epochs)'}", flush=True)

    # -- training and scoring

    def train(self, cell: Cell, budget_s: float, epochs: int = 100_000) -> dict[str, Any]:
        """Train `cell` until its CPU time reaches `budget_s` (or `epochs`); its state."""
        run, recipe = self.run_dir(cell), RECIPES[cell.recipe]
        if self.args.fresh and run not in self.freshened:
            self.clear(run)
        self.freshened.add(run)
        state = self.state(run)
        step = checkpoint_step(run)
        if state and state.get("budget_s", 0) > budget_s + 1e-6:
            print(f"  {cell.name}: trained for a larger budget ({state['budget_s']:.1f} CPU-s) "
                  "than now: retraining", flush=True)
            state = {}
        elif state and step != state.get("step"):
            print(f"  {cell.name}: the checkpoint moved since the last record (a run killed "
                  "hard?): retraining", flush=True)
            state = {}
        if not state:  # a folder without a record is not trusted either
            self.clear(run)
            state = {"cell": cell.__dict__, "options": recipe, "budget_s": budget_s,
                     "cpu_s": 0.0, "wall_s": 0.0, "step": None, "segments": 0}
        state["budget_s"] = budget_s
        left = budget_s - state["cpu_s"]
        if left <= 0:
            return state
        state["stopped_by_budget"] = False
        command = [sys.executable, "-m", "animegan_cli", "train", str(self.data[cell.set]),
                   "--out", str(run), "--epochs", str(epochs), "--eval-every", "0", "--seed",
                   str(cell.seed), "--device", self.args.device, *NETWORKS, *recipe]
        print(f"[{time.strftime('%H:%M:%S')}] {cell.name}: training for {left:.1f} CPU-s"
              f"{' more' if state['cpu_s'] else ''} ({shlex.join(recipe) or 'no options'})",
              flush=True)
        try:
            cpu_s, wall_s, by_budget = train_for(command, self.log(cell), self.threads, left)
        except Interrupted as exc:
            cpu_s, wall_s = exc.args
            self._record(run, state, cpu_s, wall_s)
            raise
        state["stopped_by_budget"] = by_budget
        self._record(run, state, cpu_s, wall_s)
        return state

    def _record(self, run: Path, state: dict[str, Any], cpu_s: float, wall_s: float) -> None:
        state["cpu_s"] += cpu_s
        state["wall_s"] += wall_s
        state["segments"] += 1
        state["step"] = checkpoint_step(run)
        state.pop("scores", None)
        self.save_state(run, state)

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        args, run = self.args, self.run_dir(cell)
        state = self.train(cell, self.budget_s(cell))
        log, data = self.log(cell), self.data[cell.set]
        ckpt = run / "generator.safetensors"
        wanted = {"samples": args.samples, "fid": args.fid, "step": state["step"]}
        scores = state.get("scores")
        fresh_scores = not scores or {k: scores.get(k) for k in wanted} != wanted
        if fresh_scores:
            t0 = time.perf_counter()
            result = json.loads(animegan(
                "eval", str(ckpt), str(data), "-n", str(args.samples), "--device", args.device,
                "--json", *([] if args.fid else ["--no-fid"]), log=log, threads=self.threads))
            scores = {**wanted, "result": result, "eval_s": time.perf_counter() - t0}
            state["scores"] = scores
            self.save_state(run, state)
        assert scores is not None
        grid = None
        if args.grids:
            args.grids.mkdir(parents=True, exist_ok=True)
            grid = args.grids / f"quality-{cell.name}.png"
            if fresh_scores or not grid.is_file():
                animegan("sample", str(ckpt), "-n", "64", "--seed", "0", "-o", str(grid),
                         log=log, threads=self.threads)
        batch = batch_size_of(run)
        images = (state["step"] or 0) * batch
        out = {**cell.__dict__, "options": RECIPES[cell.recipe], "batch_size": batch,
               "budget_s": state["budget_s"], "cpu_s": state["cpu_s"], "wall_s": state["wall_s"],
               "steps": state["step"], "images_seen": images,
               "images_per_s": images / state["wall_s"] if state["wall_s"] else None,
               "fid": scores["result"].get("fid"), "kid": scores["result"].get("kid"),
               "swd": scores["result"]["swd"]["swd"], "eval_s": scores["eval_s"],
               "run": str(run), "log": str(log), "grid": str(grid) if grid else None}
        print(f"  {cell.name}: FID {common.fmt(_num(out['fid']))}, KID x1e3 {_kid(out['kid'])}, "
              f"SWD {out['swd']:.1f}; {images:,} images in {out['cpu_s']:.0f} CPU-s "
              f"({out['wall_s']:.0f} s)", flush=True)
        return out


# ---- reports -------------------------------------------------------------------------------

def _num(x: float | None) -> float:
    return float("nan") if x is None else x


def _kid(kid: dict[str, float] | None) -> str:
    if not kid:
        return "n/a"
    return f"{kid['mean'] * 1e3:.2f} ± {kid['std'] * 1e3:.2f}"


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known and len(known) == len(values) else None


def _geomean(values: list[float | None]) -> float | None:
    if not values or any(v is None or v <= 0 for v in values):
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))  # type: ignore[arg-type]


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _r(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def summarise(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{budget: {recipe: {set: means over seeds}}}."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["budget"], r["recipe"], r["set"]), []).append(r)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (budget, recipe, name), rows in groups.items():
        kids = [r["kid"] for r in rows]
        out.setdefault(budget, {}).setdefault(recipe, {})[name] = {
            "seeds": [r["seed"] for r in rows],
            "fid": _mean([r["fid"] for r in rows]),
            "kid": _mean([k["mean"] if k else None for k in kids]),
            "kid_std": _mean([k["std"] if k else None for k in kids]),
            "swd": _mean([r["swd"] for r in rows]),
            "images_seen": _mean([r["images_seen"] for r in rows]),
            "cpu_s": _mean([r["cpu_s"] for r in rows]),
            "budget_s": rows[0]["budget_s"],
            "images_per_s": _mean([r["images_per_s"] for r in rows]),
        }
    return out


Figures = dict[str, Any]  # one recipe's figures on one set (means over seeds)


def _per_set_table(by_recipe: dict[str, dict[str, Figures]], names: list[str],
                   sets: list[str], columns: list[str],
                   cells: Callable[[str, Figures, Figures], list[str]]) -> str:
    """A markdown table with a row per recipe and `columns` per set, filled by
    cells(recipe, its cell, canonical's cell on that set)."""
    header = ["recipe", *(f"{s} {column}" for s in sets for column in columns)]
    rows = [[name, *(text for s in sets
                     for text in cells(name, by_recipe[name][s], by_recipe["canonical"][s]))]
            for name in names]
    return common.markdown_table(header, rows)


def _score_cells(name: str, c: Figures, canonical: Figures) -> list[str]:
    kid = {"mean": c["kid"], "std": c["kid_std"]} if c["kid"] is not None else None
    return [common.fmt(_num(c["fid"])), _kid(kid), common.fmt(_num(c["swd"]))]


def _cost_cells(name: str, c: Figures, canonical: Figures) -> list[str]:
    speed = f"{_num(c['images_per_s']):.1f}"
    if name != "canonical":
        speed += f" ({_r(_ratio(c['images_per_s'], canonical['images_per_s']))}x)"
    return [f"{_num(c['images_seen']):,.0f}", f"{_num(c['cpu_s']):,.0f}", speed]


def report(summary: dict[str, dict[str, dict[str, Any]]], names: list[str],
           sets: list[str]) -> tuple[str, dict[str, Any]]:
    lines: list[str] = []
    ratios: dict[str, Any] = {}
    for budget in ("B1", "B2"):
        if budget not in summary:
            continue
        by_recipe = summary[budget]
        canon = by_recipe["canonical"]
        seeds = sorted({s for r in by_recipe.values() for c in r.values() for s in c["seeds"]})
        spend = ", ".join(f"{s} {canon[s]['budget_s']:,.0f}" for s in sets)
        lines.append(f"\n### {budget}: CPU-s per cell {spend}; seed{'s' if len(seeds) > 1 else ''}"
                     f" {', '.join(map(str, seeds))}"
                     f"{' (means over seeds)' if len(seeds) > 1 else ''}\n")

        lines.append(_per_set_table(by_recipe, names, sets, ["FID", "KID x1e3", "SWD"],
                                    _score_cells))
        lines.append("\n" + _per_set_table(by_recipe, names, sets,
                                           ["images", "CPU-s", "img/s (x canonical)"],
                                           _cost_cells))
        metrics = [m for m in ("kid", "fid") if any(canon[s][m] is not None for s in sets)]
        metrics = metrics or ["swd"]
        header = ["recipe / canonical"]
        for m in metrics:
            header += [f"{m.upper()} {s}" for s in sets] + [f"{m.upper()} geo-mean"]
        header += ["CPU-s geo-mean", "img/s geo-mean"]
        rows = []
        for name in names:
            if name == "canonical":
                continue
            entry: dict[str, Any] = {}
            row = [name]
            for m in metrics + ["cpu_s", "images_per_s"]:
                per_set = {s: _ratio(by_recipe[name][s][m], canon[s][m]) for s in sets}
                entry[m] = {"per_set": per_set, "geomean": _geomean(list(per_set.values()))}
                if m in metrics:
                    row += [_r(v) for v in per_set.values()]
                row.append(_r(entry[m]["geomean"]))
            ratios.setdefault(budget, {})[name] = entry
            rows.append(row)
        if rows:
            lines.append(f"\nRatios to canonical ({', '.join(m.upper() for m in metrics)}: "
                         "below 1 is better), per set and their geometric mean over the sets:\n")
            lines.append(common.markdown_table(header, rows))
    return "\n".join(lines), ratios


# ---- main ----------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS),
                        help=f"comma-separated, from: {', '.join(SETS)}, or NAME=PATH")
    parser.add_argument("--recipes", default="canonical,defaults",
                        help=f"comma-separated (canonical is always added), from: "
                             f"{', '.join(RECIPES)}")
    parser.add_argument("--budget", choices=("B1", "B2", "both"), default="B1",
                        help="B1: canonical's CPU time for 20 epochs (capped); B2: 4 x B1; "
                             "both: every seed at B1, the first at B2")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    parser.add_argument("--budget-cap", type=float, default=600.0,
                        help="most CPU seconds for B1 (tiny values for a smoke test)")
    parser.add_argument("--samples", type=int, default=2048, help="samples scored per cell")
    parser.add_argument("--device", default="cpu",
                        help="budgets count host CPU time, so only cpu is meaningful")
    parser.add_argument("--no-fid", dest="fid", action="store_false", help="SWD only")
    parser.add_argument("--grids", type=Path, help="save each cell's sample grid here")
    parser.add_argument("--fresh", action="store_true",
                        help="re-measure B1 and retrain the cells asked for")
    parser.add_argument("--parallel", type=int, default=1,
                        help="cells trained at once, the cores shared out between them")
    parser.add_argument("--workdir", type=Path, default=common.DEFAULT_WORKDIR / "quality")
    args = parser.parse_args()
    names = list(dict.fromkeys(["canonical", *args.recipes.split(",")]))
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    keys: dict[str, str] = {}
    for name in names:  # two names for one setting would share (and race for) a run folder
        twin = keys.setdefault(run_key(RECIPES[name], args.device), name)
        if twin != name:
            parser.error(f"recipes {twin} and {name} train the same settings; pass one")
    try:
        sources = parse_sets(args.sets)
        args.seed_list = [int(s) for s in args.seeds.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    if args.budget_cap <= 0 or args.parallel < 1:
        parser.error("--budget-cap and --parallel must be positive")
    if not Path("/proc/self/stat").is_file():
        sys.exit("budgets are read from /proc/PID/stat: Linux only")
    plan = {"B1": [("B1", args.seed_list)], "B2": [("B2", args.seed_list)],
            "both": [("B1", args.seed_list), ("B2", args.seed_list[:1])]}[args.budget]
    cells = [Cell(s, r, b, seed) for b, seeds in plan for s in sources for r in names
             for seed in seeds]

    (args.workdir / "logs").mkdir(parents=True, exist_ok=True)
    log = args.workdir / "logs" / "prepare.log"
    reproduce = shlex.join(["python", *sys.argv])
    started = time.strftime("%Y-%m-%d %H:%M")
    print(f"{common.machine_line()}; load average {common.load_average()}\n"
          f"logs: {log.parent}", flush=True)
    for name, source in sources.items():
        if source is not None and not source.is_dir():
            where = (f" (../shared is resolved against the repository root, {common.REPO})"
                     if name in SETS and SETS[name] == source else "")
            sys.exit(f"set {name}: folder {source} not found{where}")
    data = {name: prepare_set(name, source, args.workdir, log) for name, source in
            sources.items()}
    bench = Bench(args, data)
    # Ctrl-C and `kill` (SIGTERM) both stop the trainings with a checkpoint. A shell starts a
    # background job with SIGINT ignored, and Python then installs no handler of its own.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)
    if args.fresh:
        for name in sources:
            bench.budgets.pop(name, None)
    try:
        results = run_all(bench, cells)
    except KeyboardInterrupt:
        sys.exit("interrupted: re-run the same command to continue")

    results.sort(key=lambda r: (r["budget"], names.index(r["recipe"]), r["seed"]))
    summary = summarise(results)
    table, ratios = report(summary, names, list(sources))
    print(f"\n$ {reproduce}\n{common.machine_line()}; {started} to "
          f"{time.strftime('%H:%M')}; {args.samples} samples per cell; "
          f"{bench.threads} threads per cell; load average "
          f"{common.load_average()}")
    print(table)
    (args.workdir / "quality.json").write_text(json.dumps(
        {"command": reproduce, "machine": common.machine_line(), "started": started,
         "threads_per_cell": bench.threads, "samples": args.samples,
         "budgets": {s: {"B1": bench.b1(s), "B2": B2_FACTOR * (bench.b1(s) or 0),
                         **bench.budgets[s]} for s in sources},
         "summary": summary, "ratios": ratios, "cells": results}, indent=1))
    print(f"\nwrote {args.workdir / 'quality.json'}")


def run_all(bench: Bench, cells: list[Cell]) -> list[dict[str, Any]]:
    """Measure each set's B1, then train and score its cells, --parallel at a time (largest
    budgets first). The first failure or Ctrl-C stops the running trainings with a checkpoint
    (re-running continues them) and exits."""
    results: list[dict[str, Any]] = []
    todo = {s: sorted((c for c in cells if c.set == s), key=lambda c: c.budget, reverse=True)
            for s in dict.fromkeys(c.set for c in cells)}
    with ThreadPoolExecutor(bench.args.parallel) as pool:
        pending: dict[Future[Any], tuple[str, Any]] = {}

        def submit_cells(name: str) -> None:
            for c in todo[name]:
                pending[pool.submit(bench.run_cell, c)] = ("cell", c)

        for name in todo:
            if bench.b1(name) is None:
                pending[pool.submit(bench.calibrate, name)] = ("b1", name)
            else:
                submit_cells(name)
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    kind, what = pending.pop(future)
                    try:
                        value = future.result()
                    except Interrupted:
                        sys.exit("interrupted: re-run the same command to continue")
                    if kind == "b1":
                        submit_cells(what)
                    else:
                        results.append(value)
        except BaseException:
            ABORT.set()  # the running trainings save a checkpoint and stop
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


if __name__ == "__main__":
    main()
