"""Does `animegan train --compile` pay back within a run? CPU seconds of whole training runs.

    python bench/compile_payback.py                      # demo faces, 600 steps, one thread
    python bench/compile_payback.py --steps 1500 --threads 2 --options="--batch-size 64"

Each variant is the same `animegan train` command on the same prepared demo set (--max-steps
--steps, --eval-every 0, seed 0), in a fresh process, charged the user + system CPU time of it
and of its children (the compile workers) as the kernel accounts it once they exit; a cold
compile gets an empty TORCHINDUCTOR_CACHE_DIR, a warm one the cache the cold run filled, as a
user's second run would. Order: plain, cold, warm, plain (the two plain runs bracket the
others, so drift from other load shows as their difference). The compiled variants pay back
when their CPU seconds fall below the plain runs' within the run length a user would train.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DEMO_IMAGES = 2000
VARIANTS = (("plain", []), ("compile, cold cache", ["--compile"]),
            ("compile, warm cache", ["--compile"]), ("plain again", []))


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=600, help="training steps per run")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run")
    ap.add_argument("--options", default="", help="more `animegan train` options, quoted")
    ap.add_argument("--workdir", type=Path, default=common.DEFAULT_WORKDIR / "compile")
    args = ap.parse_args()
    work = args.workdir
    data = work / "demo-64"
    work.mkdir(parents=True, exist_ok=True)
    if not (data / "manifest.json").is_file():
        pngs = work / "demo-png"
        for command in (["prepare", "--demo", str(DEMO_IMAGES), "-o", str(pngs), "-q"],
                        ["prepare", str(pngs), "-o", str(data), "-q"]):
            subprocess.run([sys.executable, "-m", "animegan_cli", *command], check=True)
    cache = Path(tempfile.mkdtemp(prefix="inductor-", dir=work))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    print(f"{common.machine_line()}; load average {common.load_average()}", flush=True)
    rows = []
    try:
        for i, (name, extra) in enumerate(VARIANTS):
            out = work / f"run-{i}"
            shutil.rmtree(out, ignore_errors=True)
            command = [sys.executable, "-m", "animegan_cli", "train", str(data), "--out",
                       str(out), "--epochs", "100000", "--max-steps", str(args.steps),
                       "--eval-every", "0", "--seed", "0", "-q",
                       *shlex.split(args.options), *extra]
            before, start = children_cpu_s(), time.perf_counter()
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
            cpu, wall = children_cpu_s() - before, time.perf_counter() - start
            rows.append((name, cpu, wall))
            print(f"  {name}: {cpu:.1f} CPU-s, {wall:.1f} s wall", flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    plain = common.median([rows[0][1], rows[3][1]])
    print(f"\n{args.steps} steps, {args.threads} thread(s), options {args.options or 'none'}")
    print(common.markdown_table(
        ["variant", "CPU-s", "wall s", "CPU vs plain"],
        [[name, common.fmt(cpu), common.fmt(wall), f"{cpu / plain:.2f}x"]
         for name, cpu, wall in rows]))
    print(f"\n$ {shlex.join(['python', *sys.argv])}")


if __name__ == "__main__":
    main()
