"""Training recipes compared by the quality they reach with the same number of images seen.

    python bench/quality.py --images 76800 --parallel 2      # docs/quality.md: 54 min, 2 cores
    python bench/quality.py --images 24000 --samples 1024 \\
        --recipes canonical,ema,ema-aug,ema-hinge,ema-b128    # a quick pilot of candidates

Each recipe trains the canonical DCGAN (ngf = ndf = 64, nz = 100, 64x64) with `animegan train`
on the same prepared dataset (default: the Noto Emoji PNGs of ../shared/data/emoji-google,
composited on white), for the same number of images (steps = images / batch size), and is then
scored with `animegan eval` on the same latent seeds: FID and KID (Inception, when installed)
and SWD. Both real-data statistics and samples are fixed, so rows differ only by recipe.

"canonical" is pytorch/examples' dcgan recipe: BCE, Adam 2e-4 with betas (0.5, 0.999), batch
64, no EMA, no augmentation; "defaults" is `animegan train` with no recipe option at all.
Training runs with --eval-every 0 (the periodic SWD does not change the weights, only the wall
clock). Re-running with the same --workdir resumes or reuses finished runs; --fresh retrains.
Prints a markdown table and the command that reproduces it, saves each recipe's 8x8 sample grid
(--grids DIR), and writes the figures as JSON to WORKDIR/quality.json. --parallel 2 trains two
recipes at once with one core each (the same total throughput as one after another on 2 cores,
38 + 38 against 74 images/s, but both rows then see the same machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CANONICAL = ["--batch-size", "64", "--loss", "bce", "--lr-g", "2e-4", "--lr-d", "2e-4",
             "--beta1", "0.5", "--beta2", "0.999", "--no-ema", "--no-augment", "--no-mirror"]
# Every recipe pins the networks, so only the training recipe differs between rows.
NETWORKS = ["--arch", "dcgan", "--image-size", "64", "--nz", "100", "--ngf", "64", "--ndf", "64"]


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
}


def animegan(*args: str, log: Path, threads: int | None = None) -> str:
    """Run the installed CLI; its stdout, or exit with its log on failure."""
    command = [sys.executable, "-m", "animegan_cli", *args]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with open(log, "a") as err:
        err.write(f"$ {shlex.join(command)}\n")
        err.flush()
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, text=True,
                              check=False, env=env)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {shlex.join(command)}; see {log}")
    return proc.stdout


def batch_size_of(recipe: list[str]) -> int:
    if "--batch-size" in recipe:
        return int(recipe[recipe.index("--batch-size") + 1])
    from animegan_cli.train.config import TrainConfig

    return TrainConfig().batch_size


def run_key(recipe: list[str]) -> str:
    """Short hash of the recipe and the package's defaults under it: a run folder is reused
    only for the same effective settings, so changing a default retrains "defaults"."""
    from animegan_cli.train.config import TrainConfig

    text = json.dumps([recipe, TrainConfig().to_json()])
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def run_recipe(name: str, args: argparse.Namespace, data: Path) -> dict[str, Any]:
    recipe = RECIPES[name]
    log = args.workdir / "logs" / f"{name}.log"
    threads = max(1, (os.cpu_count() or 1) // args.parallel) if args.parallel > 1 else None
    batch = batch_size_of(recipe)
    steps = -(-args.images // batch)
    run = args.workdir / "runs" / f"{name}-{args.images}-{run_key(recipe)}"
    if args.fresh and run.exists():
        shutil.rmtree(run)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {steps} steps of {batch} "
          f"({shlex.join(recipe) or 'no options'})", flush=True)
    t0 = time.perf_counter()
    animegan("train", str(data), "--out", str(run), "--max-steps", str(steps), "--epochs",
             "100000", "--eval-every", "0", "--seed", str(args.seed), "--device", args.device,
             *NETWORKS, *recipe, log=log, threads=threads)
    train_s = time.perf_counter() - t0
    ckpt = run / "generator.safetensors"
    t0 = time.perf_counter()
    scores = json.loads(animegan("eval", str(ckpt), str(data), "-n", str(args.samples),
                                 "--device", args.device, "--json", *([] if args.fid
                                                                       else ["--no-fid"]),
                                 log=log, threads=threads))
    eval_s = time.perf_counter() - t0
    if args.grids:
        args.grids.mkdir(parents=True, exist_ok=True)
        animegan("sample", str(ckpt), "-n", "64", "--seed", "0", "-o",
                 str(args.grids / f"quality-{name}.png"), log=log, threads=threads)
    result = {"recipe": name, "options": recipe, "batch_size": batch, "steps": steps,
              "images_seen": steps * batch, "train_s": train_s, "eval_s": eval_s,
              "fid": scores.get("fid"), "kid": scores.get("kid"), "swd": scores["swd"]}
    print(f"  {name}: FID {common.fmt(result['fid'] or float('nan'))}, "
          f"KID x1e3 {_kid(result['kid'])}, "
          f"SWD {result['swd']['swd']:.1f}; trained in {train_s / 60:.1f} min", flush=True)
    return result


def prepare_data(args: argparse.Namespace, log: Path) -> Path:
    if args.data:
        return args.data
    if not common.SHARED_EMOJI.is_dir():
        sys.exit(f"{common.SHARED_EMOJI} not found: pass --data (a prepared 64 px dataset)")
    data = args.workdir / "emoji-google-64"
    animegan("prepare", str(common.SHARED_EMOJI), "-o", str(data), "--size", "64", log=log)
    return data


def _kid(kid: dict[str, float] | None) -> str:
    if not kid:
        return "n/a"
    return f"{kid['mean'] * 1e3:.2f} ± {kid['std'] * 1e3:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="canonical,defaults",
                        help=f"comma-separated, from: {', '.join(RECIPES)}")
    parser.add_argument("--images", type=int, default=80_000, help="images seen per recipe")
    parser.add_argument("--samples", type=int, default=2048, help="samples scored per recipe")
    parser.add_argument("--data", type=Path, help="a prepared 64 px dataset (default: emoji)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fid", dest="fid", action="store_false", help="SWD only")
    parser.add_argument("--grids", type=Path, help="save each recipe's sample grid here")
    parser.add_argument("--fresh", action="store_true", help="retrain finished runs")
    parser.add_argument("--parallel", type=int, default=1,
                        help="recipes trained at once, the cores shared out between them")
    parser.add_argument("--workdir", type=Path, default=common.DEFAULT_WORKDIR / "quality")
    args = parser.parse_args()
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")

    (args.workdir / "logs").mkdir(parents=True, exist_ok=True)
    log = args.workdir / "logs" / "prepare.log"
    reproduce = shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv])
    print(f"{common.machine_line()}; load average {common.load_average()}\n"
          f"logs: {log.parent}", flush=True)
    data = prepare_data(args, log)
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        results = list(pool.map(lambda name: run_recipe(name, args, data), names))

    rows = [[r["recipe"], f"{r['images_seen']:,}", f"{r['steps']:,}",
             common.fmt(r["fid"] if r["fid"] is not None else float("nan")), _kid(r["kid"]),
             common.fmt(r["swd"]["swd"]), f"{r['train_s'] / 60:.1f}"] for r in results]
    print(f"\n`{reproduce}`; {args.samples} samples per recipe; load average "
          f"{common.load_average()}")
    print(common.markdown_table(["recipe", "images seen", "steps", "FID", "KID x1e3", "SWD",
                                 "train min"], rows))
    base = results[0]
    for r in results[1:]:
        if base["fid"] and r["fid"]:
            change = 1 - r["fid"] / base["fid"]
            print(f"{r['recipe']}: FID {abs(change):.1%} {'lower' if change >= 0 else 'higher'} "
                  f"than {base['recipe']}")
    (args.workdir / "quality.json").write_text(json.dumps(
        {"command": reproduce, "machine": common.machine_line(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
