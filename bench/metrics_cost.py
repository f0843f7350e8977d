"""Quality metrics: what SWD, Inception features, FID and KID cost, and whether SWD ranks right.

    python bench/metrics_cost.py                          # CPU: 512 demo faces at 64 px, ~1-2 min
    python bench/metrics_cost.py --n 4096 --device cuda   # the size `animegan eval` uses for SWD
    python bench/metrics_cost.py --inception 64           # + Inception throughput on 64 faces

SWD runs on two independent sets of demo faces (the floor for this n: real-vs-real), on the set
and itself (must be 0) and on the set and a noisy copy (must be larger than the floor). FID and
KID run on random 2048-d features of n samples, as `evaluate` would on Inception features.
Prints a markdown table, then one JSON object. Figures move with the load average (printed):
on a shared machine, compare runs taken at similar loads.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def _timed(fn: Any) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, t0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    value = fn()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return value, time.perf_counter() - t0, usage.ru_utime + usage.ru_stime - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="images per set (and feature rows)")
    parser.add_argument("--size", type=int, default=64, choices=(32, 64, 128))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--inception", type=int, default=0, metavar="N",
                        help="also time Inception features of N faces (needs the weights)")
    args = parser.parse_args()

    import numpy as np

    from animegan_cli.data.demo import demo_array
    from animegan_cli.metrics import fid_kid, inception
    from animegan_cli.metrics import swd as swd_metric

    faces, others = demo_array(args.n, args.size, seed=1), demo_array(args.n, args.size, seed=2)
    noisy = np.clip(faces + np.random.default_rng(0).normal(0, 24, faces.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    rows: list[list[str]] = []
    report: dict[str, Any] = {"n": args.n, "size": args.size, "device": args.device,
                              "machine": common.machine_line(), "load": common.load_average()}

    def swd(b: np.ndarray) -> dict[str, float]:
        return swd_metric.swd(faces, b, device=args.device)

    for name, other in (("swd real-vs-real", others), ("swd identical", faces),
                        ("swd noisy copy", noisy)):
        value, wall, cpu = _timed(lambda other=other: swd(other))
        report[name] = {"value": value["swd"], "wall_s": wall, "cpu_s": cpu}
        rows.append([name, common.fmt(value["swd"], 2), common.fmt(wall), common.fmt(cpu)])
    report["swd_ranks_right"] = (report["swd identical"]["value"] == 0
                                 and report["swd noisy copy"]["value"]
                                 > report["swd real-vs-real"]["value"])

    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.n, inception.FEATURE_DIM)).astype(np.float32)
    b = (rng.standard_normal((args.n, inception.FEATURE_DIM)) * 1.1).astype(np.float32)
    for name, fn in (("fid", lambda: fid_kid.fid_from_features(a, b)),
                     ("kid", lambda: fid_kid.kid_from_features(a, b)[0])):
        value, wall, cpu = _timed(fn)
        report[name] = {"value": value, "wall_s": wall, "cpu_s": cpu}
        rows.append([f"{name} ({args.n} x 2048 features)", common.fmt(value, 4),
                     common.fmt(wall), common.fmt(cpu)])

    if args.inception:
        extractor, why = inception.find_inception(device=args.device)
        if extractor is None:
            print(f"note: no Inception timing: {why}", file=sys.stderr)
        else:
            images = demo_array(args.inception, args.size, seed=3)
            extractor.features(images[:2])  # warm-up
            _, wall, cpu = _timed(lambda: extractor.features(images))
            report["inception_images_per_s"] = args.inception / wall
            rows.append([f"inception ({args.inception} faces)",
                         f"{args.inception / wall:.1f} img/s", common.fmt(wall), common.fmt(cpu)])

    print(f"{common.machine_line()}; load average {report['load']}; device {args.device}")
    print(common.markdown_table(["measure", "value", "wall s", "CPU s"], rows))
    print(f"SWD ranks right: {report['swd_ranks_right']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
