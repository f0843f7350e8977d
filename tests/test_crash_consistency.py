"""Crash consistency: kill `animegan train` and `animegan prepare` at random moments.

Training: one run folder is started, killed with SIGKILL at a random moment, started again
(which resumes), killed again, ... (seeded, so a failure replays). After every kill the
checkpoint must load, it must never be older than the one before (the step never goes
backwards), it may lag the last step logged before the kill by at most one checkpoint interval,
and the next start must resume exactly from it. The run then meets SIGINT, SIGTERM and a
double SIGINT, which must save (or, for the second SIGINT, leave the last checkpoint intact)
and exit 130/143 with a message telling how to resume.

Prepare: a folder of a few hundred PNGs is prepared and killed mid-way; the output path is
either absent or a complete dataset whose bytes match its manifest's fingerprint.

All trials of a story run once in a module fixture that records what it saw; the tests
assert on those records, so each property fails under its own name.

Speed: a training trial is mostly interpreter start-up and `import torch` (seconds on a
loaded 2-core machine), so the training trials are forked from a "zygote" process that has
imported the CLI once; each fork runs `animegan_cli.cli.main(argv)` (the console script's
code path) in its own session and is signalled directly. The SIGINT trial, the final
`animegan sample` and every prepare trial are real `animegan` processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import animegan_command

SEED = 20261129
KILL_TRIALS = 10
PREPARE_TRIALS = 6
INTERVAL = 2  # --checkpoint-every 2steps
TRAIN = ["train", "--demo", "64", "--epochs", "1000", "--image-size", "32", "--ngf", "8",
         "--ndf", "8", "--batch-size", "16", "--checkpoint-every", f"{INTERVAL}steps",
         "--log-every", "1"]
START_LINE = re.compile(r"(starting|resuming at) step (\d+)/")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "COLUMNS": "200"}


class Child:
    """A real `animegan` process in its own session, its output collected line by line."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([*animegan_command(), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True, env=ENV, start_new_session=True)
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, out), daemon=True)
                         for s, out in ((self.proc.stderr, self.stderr),
                                        (self.proc.stdout, self.stdout))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object, out: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            out.append(line)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.stderr):
                match = pattern.search(line)
                if match:
                    return match
            if self.proc.poll() is not None:
                self.finish()
                raise AssertionError(f"exited {self.proc.returncode} before {pattern.pattern!r}"
                                     f":\n{self.text}")
            time.sleep(0.02)
        raise AssertionError(f"no {pattern.pattern!r} within {timeout}s:\n{self.text}")

    def finish(self, timeout: float = 120) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            # Anything the process started (prepare's decoding workers) goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            for reader in self._readers:
                reader.join(10)
        return code

    @property
    def text(self) -> str:
        return "".join(self.stderr) + "".join(self.stdout)


ZYGOTE = Path(__file__).with_name("children") / "zygote.py"


class Zygote:
    """A process that imported the CLI once and forks a child per `animegan` run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0
        self.proc = subprocess.Popen([sys.executable, str(ZYGOTE)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=ENV)
        assert self._read() == "ready"

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the zygote died"
        return line.strip()

    def ask(self, request: dict[str, object]) -> dict[str, object]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._read())

    def start(self, args: list[str]) -> Forked:
        self.count += 1
        out = self.root / f"run{self.count}"
        reply = self.ask({"run": args, "stdout": f"{out}.out", "stderr": f"{out}.err"})
        return Forked(self, int(reply["pid"]), Path(f"{out}.out"), Path(f"{out}.err"))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


class Forked:
    """A forked `animegan` run, with the same interface the trials use on a Child."""

    def __init__(self, zygote: Zygote, pid: int, out: Path, err: Path) -> None:
        self.zygote, self.pid, self.out, self.err = zygote, pid, out, err
        self.code: int | None = None

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def poll(self) -> int | None:
        if self.code is None:
            self.code = self.zygote.ask({"wait": self.pid, "block": False})["code"]  # type: ignore[assignment]
        return self.code

    def finish(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                os.killpg(self.pid, signal.SIGKILL)
                self.code = self.zygote.ask({"wait": self.pid, "block": True})["code"]  # type: ignore[assignment]
                raise AssertionError(f"did not exit within {timeout}s:\n{self.text}")
            time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # anything it started goes with it
        assert self.code is not None
        return self.code

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = pattern.search(self.err.read_text(errors="replace")) \
                if self.err.exists() else None
            if match:
                return match
            if self.poll() is not None:
                raise AssertionError(f"exited {self.code} before {pattern.pattern!r}:\n"
                                     f"{self.text}")
            time.sleep(0.02)
        raise AssertionError(f"no {pattern.pattern!r} within {timeout}s:\n{self.text}")

    @property
    def text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.err, self.out) if p.exists())


# ---- training -------------------------------------------------------------------------------

@dataclass
class Trial:
    kind: str  # SIGKILL [mid-write [generator]] | SIGINT | SIGTERM | SIGINT x2
    resumed_from: int  # the step the process said it started at
    expected_start: int  # the checkpoint's step before this trial (0: none)
    delay: float  # seconds after the start line before the (first) signal
    code: int
    output: str
    logged_max: int  # the highest step logged in metrics.jsonl during this trial
    ckpt_step: int | None  # the checkpoint's step after the trial
    load_error: str | None  # why last.safetensors / generator.safetensors did not load
    partials_after: list[str] = field(default_factory=list)
    stale_partials_kept: list[str] = field(default_factory=list)  # from before, in checkpoints/
    exit_seconds: float = 0.0  # from the (last) signal to the exit
    killed_during: str | None = None  # the temporary file being written at the SIGKILL


@dataclass
class Story:
    run: Path
    trials: list[Trial]
    seconds: float


def _metrics_from(path: Path, offset: int) -> list[int]:
    """Steps of the complete lines appended since `offset` (a kill may cut the last line)."""
    if not path.exists():
        return []
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    steps = []
    for line in data.split(b"\n")[:-1]:  # the piece after the last newline is incomplete
        with contextlib.suppress(ValueError, KeyError):
            steps.append(int(json.loads(line)["step"]))
    return steps


def _check_loads(run: Path) -> tuple[int | None, str | None]:
    """The checkpoint's step, and whether both files load and sample (in this process)."""
    from animegan_cli.checkpoint import open_checkpoint
    from animegan_cli.errors import UserError
    from animegan_cli.sample import load_generator

    last = run / "checkpoints" / "last.safetensors"
    if not last.exists():
        return None, None
    try:
        step = int(open_checkpoint(last).meta["step"])
        for path in (last, run / "generator.safetensors"):
            images = load_generator(path, "cpu").sample(4, seed=1)
            assert tuple(images.shape) == (4, 32, 32, 3)
        return step, None
    except (UserError, AssertionError, OSError, KeyError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _wait_for_a_step(run: Path, offset: int, child: Child | Forked,
                     timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not _metrics_from(run / "metrics.jsonl", offset):
        assert child.poll() is None, child.text
        assert time.monotonic() < deadline, "no training step logged in time"
        time.sleep(0.02)


def _trial(start: Callable[[list[str]], Child | Forked], run: Path, kind: str, delay: float,
           expected_start: int) -> Trial:
    ckpt_dir = run / "checkpoints"
    stale = sorted(p.name for p in ckpt_dir.glob(".*.partial")) if ckpt_dir.exists() else []
    metrics = run / "metrics.jsonl"
    offset = metrics.stat().st_size if metrics.exists() else 0
    resume = ["--resume"] if (ckpt_dir / "last.safetensors").exists() else []
    before = _partials(run)
    child = start([*TRAIN, *resume, "--out", str(run)])
    try:
        resumed_from = int(child.wait_for(START_LINE).group(2))
        if kind in ("SIGINT", "SIGTERM", "SIGINT x2"):  # a clean stop needs steps being taken
            _wait_for_a_step(run, offset, child)
        time.sleep(delay)
        sent = time.monotonic()
        killed_during = None
        if kind == "SIGKILL":
            child.send_signal(signal.SIGKILL)
        elif kind == "SIGKILL mid-write":
            killed_during = _kill_when_a_write_starts(run, child, before)
        elif kind == "SIGKILL mid-write generator":
            killed_during = _kill_when_a_write_starts(run, child, before, ".generator.")
        elif kind == "SIGINT x2":
            child.send_signal(signal.SIGINT)
            time.sleep(0.05)
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
        else:
            child.send_signal(getattr(signal, kind))
    except BaseException:
        if child.poll() is None:  # never leave a training process behind
            child.send_signal(signal.SIGKILL)
        child.finish()
        raise
    code = child.finish()
    exit_seconds = time.monotonic() - sent
    steps = _metrics_from(metrics, offset)
    ckpt_step, load_error = _check_loads(run)
    kept = [name for name in stale if (ckpt_dir / name).exists()]
    return Trial(kind, resumed_from, expected_start, delay, code, child.text,
                 max(steps, default=resumed_from), ckpt_step, load_error,
                 sorted(_partials(run)), kept, exit_seconds, killed_during)


def _partials(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob(".*.partial")} if run.exists() else set()


def _kill_when_a_write_starts(run: Path, child: Child | Forked, before: set[str],
                              prefix: str = ".", timeout: float = 60) -> str:
    """SIGKILL the moment a new temporary file appears: a kill in the middle of a write."""
    folders = [run, run / "checkpoints", run / "samples"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for folder in folders:
            for name in os.listdir(folder):
                rel = str((folder / name).relative_to(run))
                if name.startswith(prefix) and name.endswith(".partial") and rel not in before:
                    child.send_signal(signal.SIGKILL)
                    return rel
        assert child.poll() is None, child.text
    raise AssertionError("no write started in time")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    rng = random.Random(SEED)
    root = tmp_path_factory.mktemp("crash")
    run = root / "run"
    began = time.monotonic()
    plan = [("SIGKILL", rng.uniform(0.0, 1.5)) for _ in range(KILL_TRIALS)]
    # Random moments mostly miss the few milliseconds of a write, so aim at them too.
    plan[3:3] = [("SIGKILL mid-write", 0.0)]
    plan[8:8] = [("SIGKILL mid-write generator", rng.uniform(0.0, 1.0))]
    plan += [("SIGTERM", rng.uniform(0.0, 0.3)), ("SIGINT x2", rng.uniform(0.0, 0.3)),
             ("SIGINT", rng.uniform(0.0, 0.3))]
    zygote = Zygote(root)
    trials: list[Trial] = []
    expected = 0
    try:
        for kind, delay in plan:
            real = kind == "SIGINT"  # one trial through the console script itself
            trial = _trial(Child if real else zygote.start, run, kind, delay, expected)
            trials.append(trial)
            if trial.ckpt_step is not None:
                expected = trial.ckpt_step
    finally:
        zygote.close()
    return Story(run, trials, time.monotonic() - began)


def _kills(story: Story) -> list[Trial]:
    return [t for t in story.trials if t.kind.startswith("SIGKILL")]


def test_a_killed_run_always_leaves_a_loadable_checkpoint(story: Story) -> None:
    assert len(_kills(story)) >= 10
    for i, t in enumerate(story.trials):
        assert t.load_error is None, (i, t)
        assert "Traceback" not in t.output, (i, t.output)
    assert any(t.ckpt_step for t in _kills(story)), "no kill came after the first checkpoint"


def test_the_step_never_goes_backwards_and_at_most_one_interval_is_lost(story: Story) -> None:
    previous = 0
    for i, t in enumerate(story.trials):
        step = t.ckpt_step or 0
        assert step >= previous, (i, t)
        # The checkpoint for step s is written after step s is logged, so it can lag the last
        # logged step by at most one interval, and can never be ahead of it.
        assert step <= t.logged_max, (i, t)
        assert t.logged_max - step <= INTERVAL, (i, t)
        previous = step


def test_each_start_resumes_exactly_from_the_last_checkpoint(story: Story) -> None:
    for i, t in enumerate(story.trials):
        assert t.resumed_from == t.expected_start, (i, t)
        if t.expected_start:
            assert f"resuming at step {t.expected_start}/" in t.output, (i, t.output)


def test_partial_files_are_never_taken_for_checkpoints(story: Story) -> None:
    from animegan_cli.checkpoint import open_checkpoint

    for i, t in enumerate(story.trials):
        # Temporary files are hidden and say what they are; the finished names always held a
        # complete file (they loaded above); a resume sweeps the leftovers in checkpoints/.
        for name in t.partials_after:
            assert Path(name).name.startswith(".") and name.endswith(".partial"), (i, name)
        assert not t.stale_partials_kept, (i, t.stale_partials_kept)
    for path in (story.run / "checkpoints").iterdir():
        if not path.name.startswith("."):
            open_checkpoint(path)  # every visible file there is a complete checkpoint
    assert any(t.killed_during for t in story.trials), "no kill landed in a write"


def test_a_resume_sweeps_what_killed_writes_left(story: Story) -> None:
    """Leftovers are harmless (hidden, never read) but should not pile up run after run."""
    left = set()
    for earlier, later in zip(story.trials, story.trials[1:]):
        left |= set(earlier.partials_after) & set(later.partials_after)
    assert not left, left


@pytest.mark.parametrize(("kind", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_saves_a_checkpoint_and_says_how_to_resume(story: Story, kind: str,
                                                            code: int) -> None:
    t = next(t for t in story.trials if t.kind == kind)
    assert t.code == code, t
    assert "animegan: error:" not in t.output  # a requested stop is not an error
    lines = [line for line in t.output.splitlines() if line.startswith("animegan: stopped by")]
    assert len(lines) == 1, t.output
    match = re.search(rf"stopped by {kind} at step (\d+); checkpoint saved\. Resume with: "
                      rf"animegan train --demo 64 --out {re.escape(str(story.run))}$", lines[0])
    assert match, lines[0]
    assert int(match.group(1)) == t.ckpt_step == t.logged_max, t  # saved exactly where it stopped
    assert "Traceback" not in t.output


def test_a_second_sigint_exits_at_once_without_corrupting_anything(story: Story) -> None:
    t = next(t for t in story.trials if t.kind == "SIGINT x2")
    assert t.code == 130, t
    assert t.exit_seconds < 10, t
    assert t.load_error is None and t.ckpt_step is not None and t.ckpt_step >= t.expected_start
    assert "Traceback" not in t.output, t.output


def test_the_real_sample_command_reads_the_final_checkpoint(story: Story, tmp_path: Path
                                                            ) -> None:
    proc = subprocess.run([*animegan_command(), "sample", str(story.run / "checkpoints" /
                                                       "last.safetensors"),
                           "-n", "4", "-o", str(tmp_path / "grid.png")],
                          capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "grid.png").stat().st_size > 0


# ---- prepare --------------------------------------------------------------------------------

@dataclass
class PrepareTrial:
    replacing: bool  # a complete dataset (crop "stretch") was at the output path before
    crop: str  # this run's --crop, so the dataset found can be told old from new
    delay: float
    code: int
    state: str  # "absent", "complete", or what is wrong
    output: str
    old_states: list[str]  # hidden `.NAME.PID.old` folders left by a kill between the renames


@dataclass
class PrepareStory:
    full_seconds: float
    count: int
    trials: list[PrepareTrial]


def _dataset_state(out: Path, count: int) -> str:
    from animegan_cli.data.packed import open_dataset
    from animegan_cli.errors import UserError

    if not out.exists():
        return "absent"
    try:
        ds = open_dataset(out)
    except UserError as exc:
        return f"unusable: {exc}"
    if len(ds) != count:
        return f"{len(ds)} images instead of {count}"
    digest = hashlib.sha256((out / "images.u8").read_bytes()).hexdigest()
    if digest != ds.fingerprint:
        return "images.u8 does not match the manifest's fingerprint"
    return f"complete ({ds.manifest['options']['crop']})"  # which run wrote it


@pytest.fixture(scope="module")
def prepare_story(tmp_path_factory: pytest.TempPathFactory) -> PrepareStory:
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("prepare")
    src = root / "src"
    src.mkdir()
    rng = np.random.default_rng(SEED)
    count = 300
    for i in range(count):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(src / f"img_{i:04d}.png")
    out = root / "dataset"
    crops = ["center", "pad"]  # alternate, so each run rebuilds instead of being up to date

    def start(crop: str) -> Child:
        return Child(["prepare", str(src), "-o", str(out), "--size", "32", "--crop", crop,
                      "--workers", "2"])

    pristine = root / "pristine"
    began = time.monotonic()
    first = start("stretch")
    assert first.finish() == 0, first.text
    full_seconds = time.monotonic() - began
    assert _dataset_state(out, count) == "complete (stretch)"
    out.rename(pristine)

    pick = random.Random(SEED)
    trials = []
    for i in range(PREPARE_TRIALS):
        replacing = i % 2 == 1  # odd trials: a complete dataset is in place; even: none
        if out.exists():
            shutil.rmtree(out)
        if replacing:
            shutil.copytree(pristine, out)
        delay = pick.uniform(0.1, 1.1 * full_seconds)
        child = start(crops[i % 2])
        time.sleep(delay)
        child.proc.send_signal(signal.SIGKILL)
        code = child.finish()
        olds = sorted(root.glob(f".{out.name}.*.old"))
        trials.append(PrepareTrial(replacing, crops[i % 2], delay, code,
                                   _dataset_state(out, count),
                                   child.text, [_dataset_state(o, count) for o in olds]))
        for o in olds:  # keep trials independent
            shutil.rmtree(o)
    return PrepareStory(full_seconds, count, trials)


def test_killed_prepare_leaves_no_partial_dataset(prepare_story: PrepareStory) -> None:
    assert len(prepare_story.trials) >= PREPARE_TRIALS
    for i, t in enumerate(prepare_story.trials):
        assert t.state == "absent" or t.state.startswith("complete ("), (i, t)
        if not t.replacing:  # nothing was there before: it is this run's, or nothing
            assert t.state in ("absent", f"complete ({t.crop})"), (i, t)
        assert "Traceback" not in t.output, (i, t.output)


def test_a_killed_replacement_loses_neither_dataset(prepare_story: PrepareStory) -> None:
    """Replacing a dataset is two renames (old aside, new in): a kill between them leaves the
    path absent, but the previous dataset must then survive, complete, beside it."""
    replacing = [t for t in prepare_story.trials if t.replacing]
    assert replacing
    for t in replacing:
        assert t.state in ("complete (stretch)", f"complete ({t.crop})") \
            or t.old_states == ["complete (stretch)"], t


def _prepare_with_workers_running(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """`animegan prepare` on 2,000 images in its own session, once both its workers exist."""
    import numpy as np
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(SEED)
    for i in range(2000):
        pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(src / f"img_{i:04d}.png")
    proc = subprocess.Popen([*animegan_command(), "prepare", str(src), "-o",
                             str(tmp_path / "out"), "--size", "32", "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    workers: list[str] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            workers = children.read_text().split()
        time.sleep(0.005)
    assert len(workers) >= 2, "the decoding pool never started"
    return proc, workers


def _running(pid: str) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False  # gone and reaped
    return state not in ("Z", "X")  # a zombie waits for its new parent to reap it


def _assert_workers_end(workers: list[str]) -> None:
    deadline = time.monotonic() + 5  # signals are delivered at once; exiting takes a moment
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if _running(pid)], "workers outlived prepare"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a fork pool and /proc: Linux")
def test_killing_prepare_ends_its_workers_quietly(tmp_path: Path) -> None:
    """kill -9 of prepare must not leave its forked workers decoding on as orphans, then
    printing BrokenPipe tracebacks into the terminal when they report to the dead parent."""
    proc, workers = _prepare_with_workers_running(tmp_path)
    proc.kill()
    # The workers hold the stderr pipe too: it ends only when they are gone.
    _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    _assert_workers_end(workers)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a fork pool and /proc: Linux")
def test_ctrl_c_during_prepare_leaves_nothing_behind(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole foreground process group: the workers must stay quiet and
    prepare must end them, say it was interrupted and remove its unfinished output."""
    proc, workers = _prepare_with_workers_running(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    _assert_workers_end(workers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no dataset, no .partial


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a fork pool and /proc: Linux")
def test_sigint_to_the_workers_alone_changes_nothing(tmp_path: Path) -> None:
    """Whether to stop is prepare's decision: a worker must not die of SIGINT (with a
    KeyboardInterrupt traceback) while prepare goes on."""
    proc, workers = _prepare_with_workers_running(tmp_path)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):  # already done
            os.kill(int(pid), signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["count"] == 2000
