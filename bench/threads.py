"""Where do the cores go at small batches? The engine's training step on 1 and 2 threads.

    python bench/threads.py                 # batch 8 and 64, ngf = ndf = 64 and 32, ~4 min idle
    python bench/threads.py --profile       # + which ops the second thread speeds up (batch 8)
    python bench/threads.py --adam          # + the engine's fused Adam against unfused Adam

Each configuration (threads x batch x width) runs in a fresh process: the engine's Trainer with
animegan's default recipe for this CPU (bf16 autocast where the CPU has it natively), its
`train_step` on one random batch, `--warmup` untimed steps, then `--steps` timed ones. The wall
time and the process's CPU time (user + system of all its threads) over the timed steps give
images/s, images per CPU-second and how busy the threads were (CPU-s / (wall s x threads)).
Configurations alternate (all of one round, then the next round), medians of `--repeats`.

--profile adds torch.profiler's self time per op over the same steps at batch 8 on 1 and on 2
threads: the ops that run no faster on 2 threads are where the second core waits.
--adam adds, on one thread, the engine's step with its fused Adam against the same step with
torch's default (unfused, for-loop) Adam: both trainers in one process, 8 steps of each in
turn for 12 rounds (the first 2 dropped), so load from elsewhere slows both alike.

Run it on an idle machine: another job takes cores away from a 2-thread step in the middle of a
parallel region, and the second thread then looks useless.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
DEMO_IMAGES = 512
PROFILE_ROWS = 14
ADAM_ROUNDS = 12


def _trainer(args: argparse.Namespace):  # noqa: ANN202
    import torch

    options = {"batch_size": args.batch_size, "max_steps": 10**6, "device": "cpu",
               "ngf": args.width, "ndf": args.width, "seed": 0}
    trainer = common.engine_trainer(args.dataset, args.out, options)
    real = torch.rand(args.batch_size, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return trainer, (real * 2 - 1).contiguous(memory_format=torch.channels_last)


def child_time(args: argparse.Namespace) -> dict:
    trainer, real = _trainer(args)
    for _ in range(args.warmup):
        common.engine_step(trainer, real)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        common.engine_step(trainer, real)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    images = args.steps * args.batch_size
    return {"images_per_s": images / wall, "images_per_cpu_s": images / cpu,
            "busy": cpu / (wall * args.threads), "precision": trainer.precision}


def child_profile(args: argparse.Namespace) -> dict:
    """Self CPU time per op (milliseconds per step) over the timed steps."""
    from torch.profiler import ProfilerActivity, profile

    trainer, real = _trainer(args)
    for _ in range(args.warmup):
        common.engine_step(trainer, real)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall0 = time.perf_counter()
        for _ in range(args.steps):
            common.engine_step(trainer, real)
        wall = time.perf_counter() - wall0
    ops = {e.key: e.self_cpu_time_total / 1e3 / args.steps for e in prof.key_averages()}
    return {"ops_ms": ops, "step_ms": wall * 1e3 / args.steps}


def child_adam(args: argparse.Namespace) -> dict:
    """Milliseconds per step, fused (the engine's) and unfused Adam, interleaved."""
    import statistics

    import torch

    trainers = {"fused": _trainer(args), "unfused": _trainer(args)}
    state = trainers["unfused"][0].state
    for name in ("opt_g", "opt_d"):
        fused = getattr(state, name)
        setattr(state, name, torch.optim.Adam(fused.param_groups[0]["params"],
                                              lr=fused.param_groups[0]["lr"],
                                              betas=fused.param_groups[0]["betas"]))
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for _ in range(ADAM_ROUNDS):
        for name, (trainer, real) in trainers.items():
            start = time.perf_counter()
            for _ in range(8):
                common.engine_step(trainer, real)
            times[name].append((time.perf_counter() - start) / 8 * 1e3)
    return {k: statistics.median(v[2:]) for k, v in times.items()}


def _child(args: argparse.Namespace, mode: str, threads: int, batch: int, width: int) -> dict:
    argv = [SCRIPT, "--child", mode, "--threads", str(threads), "--batch-size", str(batch),
            "--width", str(width), "--warmup", str(args.warmup), "--steps", str(args.steps),
            "--dataset", str(args.dataset), "--out", str(args.workdir / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, *argv], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, check=True)
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def profile_table(args: argparse.Namespace) -> str:
    one = _child(args, "profile", 1, 8, 64)
    two = _child(args, "profile", 2, 8, 64)
    ops = sorted(two["ops_ms"], key=lambda k: -two["ops_ms"][k])
    slow = sum(two["ops_ms"][k] for k in ops if two["ops_ms"][k] * 1.3 > one["ops_ms"].get(k, 0))
    total = sum(two["ops_ms"].values())
    rows = [[k, common.fmt(one["ops_ms"].get(k, 0.0), 2), common.fmt(two["ops_ms"][k], 2),
             f"{one['ops_ms'].get(k, 0.0) / max(two['ops_ms'][k], 1e-9):.2f}x"]
            for k in ops[:PROFILE_ROWS]]
    return (f"batch 8, ngf = ndf = 64: step {one['step_ms']:.1f} ms on 1 thread, "
            f"{two['step_ms']:.1f} ms on 2 ({one['step_ms'] / two['step_ms']:.2f}x); on 2 "
            f"threads {slow / total:.0%} of the ops' self time is in ops less than 1.3x faster "
            f"than on 1 thread\n\n"
            + common.markdown_table(["op (self time, ms per step)", "1 thread", "2 threads",
                                     "speed-up"], rows))


CHILDREN = {"time": child_time, "profile": child_profile, "adam": child_adam}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", default="8,64", help="batch sizes, comma-separated")
    ap.add_argument("--widths", default="64,32", help="ngf = ndf values, comma-separated")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--adam", action="store_true")
    ap.add_argument("--workdir", type=Path, default=common.DEFAULT_WORKDIR / "threads")
    ap.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--width", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(CHILDREN[args.child](args)))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    args.dataset = args.workdir / "demo-64"
    if not (args.dataset / "manifest.json").is_file():  # the plan wants a dataset; steps use
        pngs = args.workdir / "demo-png"                  # a random batch
        for command in (["prepare", "--demo", str(DEMO_IMAGES), "-o", str(pngs), "-q"],
                        ["prepare", str(pngs), "-o", str(args.dataset), "-q"]):
            subprocess.run([sys.executable, "-m", "animegan_cli", *command], check=True)
    print(f"{common.machine_line()}; load average {common.load_average()}", flush=True)
    configs = [(t, int(b), int(w)) for b in args.batches.split(",")
               for w in args.widths.split(",") for t in (1, 2)]
    runs: dict[tuple[int, int, int], list[dict]] = {c: [] for c in configs}
    precision = ""
    for _ in range(args.repeats):
        for config in configs:
            result = _child(args, "time", *config)
            runs[config].append(result)
            precision = result["precision"]
    print(f"load average after: {common.load_average()}; precision {precision}; medians of "
          f"{args.repeats} runs of {args.steps} steps\n")
    rows = []
    for threads, batch, width in configs:
        res = runs[(threads, batch, width)]
        speed = common.median([r["images_per_s"] for r in res])
        one = common.median([r["images_per_s"] for r in runs[(1, batch, width)]])
        rows.append([str(batch), str(width), str(threads), common.fmt(speed),
                     common.fmt(common.median([r["images_per_cpu_s"] for r in res])),
                     f"{common.median([r['busy'] for r in res]):.0%}", f"{speed / one:.2f}x"])
    print(common.markdown_table(["batch", "ngf = ndf", "threads", "images/s",
                                "images per CPU-s", "threads busy", "vs 1 thread"], rows))
    if args.profile:
        print("\n" + profile_table(args))
    if args.adam:
        rows = []
        for batch in args.batches.split(","):
            for width in args.widths.split(","):
                ms = _child(args, "adam", 1, int(batch), int(width))
                rows.append([batch, width, common.fmt(ms["unfused"]), common.fmt(ms["fused"]),
                             f"{ms['unfused'] / ms['fused']:.3f}x"])
        print("\none thread, ms per step (medians of 10 interleaved rounds of 8 steps)\n\n"
              + common.markdown_table(["batch", "ngf = ndf", "unfused Adam", "fused (engine)",
                                       "speed-up"], rows))
    print(f"\n$ {shlex.join(['python', *sys.argv])}")


if __name__ == "__main__":
    main()
