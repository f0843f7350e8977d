"""Soak test: does a long training run hold its memory flat?

Trains a tiny model for many epochs in a child process (the real `animegan train`) and samples
the child's resident memory from /proc/PID/status once a second. Reports the RSS just after
warm-up, at the end, the growth between them in percent, and the post-warm-up trend (a least-
squares slope), against a target of < 10% growth after warm-up.

    python bench/soak.py                         # 300 epochs of --demo 256 at 32 px
    python bench/soak.py --max-seconds 180       # stop (SIGINT, which saves) after 3 minutes
    python bench/soak.py --epochs 2000 --eval-every 1 --json soak.json

The SWD evaluation runs every --eval-every epochs (default 10: exercised, but on a 2-core
machine an evaluation costs more than an epoch of this tiny model, so not every epoch).

Warm-up lasts until the first SWD evaluation is over (the allocator keeps some of what it
used: a one-off step of ~30 MiB), and at least the first --warmup-fraction of the run and
--min-warmup seconds. The RSS at the end of warm-up and at the end are each the median of a
window of samples, so a transient allocation (an evaluation briefly takes ~250 MiB) does not
decide the result; the trend is the least-squares slope of those window medians. Linux only.

Only the standard library is imported here: the parent must not weigh on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_GROWTH_PERCENT = 10.0


def read_status(pid: int) -> dict[str, int] | None:
    """VmRSS, RssAnon, RssFile (KiB) of a live process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0])
    return out if "VmRSS" in out else None


def last_step(metrics: Path) -> int | None:
    """The step of the last complete line of metrics.jsonl (cheap: reads its tail)."""
    try:
        with open(metrics, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(tail[:-1]):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return None


def window_medians(samples: list[dict[str, float]], window: int) -> list[tuple[float, float]]:
    """(time, median RSS) of consecutive windows: spikes of a few seconds drop out."""
    out = []
    for i in range(0, len(samples) - window + 1, window):
        chunk = samples[i:i + window]
        out.append((statistics.median(s["t"] for s in chunk),
                    statistics.median(s["rss"] for s in chunk)))
    return out


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, KiB) in KiB per hour."""
    if len(points) < 3:
        return 0.0
    xs, ys = zip(*points)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / var * 3600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--demo", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--warmup-fraction", type=float, default=0.2)
    parser.add_argument("--min-warmup", type=float, default=20.0, help="seconds")
    parser.add_argument("--window", type=int, default=15, help="samples per median")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eval-every", type=int, default=10, help="epochs between SWD evals")
    parser.add_argument("--max-seconds", type=float, default=0.0,
                        help="stop the run with SIGINT after this long (0: run to the end)")
    parser.add_argument("--extra", default="", help="more `animegan train` options, quoted")
    parser.add_argument("--out", type=Path, help="run folder (default: a fresh temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures and samples here")
    args = parser.parse_args(argv)

    run = args.out or Path(tempfile.mkdtemp(prefix="animegan-soak-")) / "run"
    command = [sys.executable, "-m", "animegan_cli", "train", "--demo", str(args.demo),
               "--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size",
               str(args.batch_size), "--epochs", str(args.epochs), "--device", args.device,
               "--eval-every", str(args.eval_every), *shlex.split(args.extra), "--out", str(run)]
    print(f"reproduce: cd {shlex.quote(str(REPO))} && {shlex.quote(sys.executable)} "
          f"bench/soak.py {' '.join(shlex.quote(a) for a in (argv or sys.argv[1:]))}".rstrip())
    print(f"child:     {' '.join(shlex.quote(c) for c in command)}", flush=True)

    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)
    started = threading.Event()
    output: list[str] = []

    def pump(stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            output.append(line)
            if "starting step" in line or "resuming at step" in line:
                started.set()

    readers = [threading.Thread(target=pump, args=(s,), daemon=True)
               for s in (proc.stdout, proc.stderr)]
    for reader in readers:
        reader.start()

    samples: list[dict[str, float]] = []  # t (s since start line), rss, anon, file, step
    t0 = None
    began = time.monotonic()
    try:
        while proc.poll() is None:
            status = read_status(proc.pid)
            if status and started.is_set():
                now = time.monotonic()
                t0 = t0 if t0 is not None else now
                samples.append({"t": round(now - t0, 2), "rss": status["VmRSS"],
                                "anon": status.get("RssAnon", 0),
                                "file": status.get("RssFile", 0),
                                "step": last_step(run / "metrics.jsonl") or 0})
                if args.max_seconds and now - t0 >= args.max_seconds:
                    proc.send_signal(signal.SIGINT)  # the run saves a checkpoint and exits 130
                    proc.wait()
                    break
                if len(samples) % 30 == 0:
                    s = samples[-1]
                    print(f"  t={s['t']:7.0f}s  step {s['step']:6d}  RSS {s['rss'] / 1024:7.1f} MiB"
                          f"  (anon {s['anon'] / 1024:.1f})", flush=True)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        print("interrupted: stopping the child, reporting what was measured", flush=True)
        proc.wait()
    for reader in readers:
        reader.join(5)
    wall = time.monotonic() - began

    if proc.returncode not in (0, 130) or len(samples) < 2 * args.window:
        print(f"training exited {proc.returncode} after {len(samples)} samples:\n"
              + "".join(output[-20:]), file=sys.stderr)
        return 2

    duration = samples[-1]["t"]
    warm_t = max(args.min_warmup, args.warmup_fraction * duration)
    if args.eval_every:  # past the first evaluation: the step after it is logged
        first_eval_done = (args.eval_every * (args.demo // args.batch_size)) + 1
        warm_t = max(warm_t, next((s["t"] for s in samples if s["step"] >= first_eval_done),
                                  duration))
    after = [s for s in samples if s["t"] >= warm_t]
    if len(after) < 2 * args.window:
        print(f"the run was too short to get past warm-up ({duration:.0f}s); use more --epochs",
              file=sys.stderr)
        return 2
    # The last samples can catch the final checkpoint and interpreter teardown: skip 2.
    tail = after[-args.window - 2:-2]
    head = after[:args.window]
    warm = statistics.median(s["rss"] for s in head)
    end = statistics.median(s["rss"] for s in tail)
    warm_anon = statistics.median(s["anon"] for s in head)
    end_anon = statistics.median(s["anon"] for s in tail)
    growth = (end - warm) / warm * 100
    trend = slope_per_hour(window_medians(after, args.window))
    peak = max(s["rss"] for s in samples)
    steps = samples[-1]["step"]
    verdict = "PASS" if growth < TARGET_GROWTH_PERCENT else "FAIL"

    print()
    print(f"run:        up to {args.epochs} epochs of --demo {args.demo} at 32 px, batch "
          f"{args.batch_size}, SWD every {args.eval_every} epochs: {steps} steps logged, "
          f"{duration:.0f}s of training ({wall:.0f}s wall), exit {proc.returncode}")
    print(f"machine:    {platform.platform()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}")
    print(f"samples:    {len(samples)} at {args.interval:g}s; warm-up = first {warm_t:.0f}s")
    print(f"RSS:        after warm-up {warm / 1024:.1f} MiB, at the end {end / 1024:.1f} MiB, "
          f"peak {peak / 1024:.1f} MiB (medians of {args.window} samples)")
    print(f"anonymous:  after warm-up {warm_anon / 1024:.1f} MiB, at the end "
          f"{end_anon / 1024:.1f} MiB")
    print(f"trend:      {trend / 1024:+.1f} MiB/hour after warm-up (least squares)")
    print(f"growth:     {growth:+.2f}% after warm-up (target < {TARGET_GROWTH_PERCENT:g}%): "
          f"{verdict}")
    if args.json:
        args.json.write_text(json.dumps({
            "command": command, "epochs": args.epochs, "steps": steps,
            "training_seconds": duration, "warmup_seconds": warm_t,
            "rss_after_warmup_kib": warm, "rss_end_kib": end, "rss_peak_kib": peak,
            "anon_after_warmup_kib": warm_anon, "anon_end_kib": end_anon,
            "growth_percent": growth, "trend_kib_per_hour": trend, "verdict": verdict,
            "samples": samples}, indent=1))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
