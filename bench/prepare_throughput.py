"""Throughput of `animegan prepare` against torchvision ImageFolder and a plain Pillow loop.

    python bench/prepare_throughput.py                     # the default run (~3-6 min, 2 cores)
    python bench/prepare_throughput.py --repeats 5 --workers 4 --workdir /data/bench
    python bench/prepare_throughput.py --breakdown         # where prepare's time goes

Variants, side by side on the same folders (root/class0/*.jpg, read from the page cache):
  a  animegan_cli.data.prepare.prepare(PrepareOptions(DecodeOptions(size=64), workers=W)):
     scan, decode in a worker pool (its start-up included), pixel hashes, the packed file with
     its fsync, manifest and preview. A fresh output folder every time (no up-to-date shortcut).
  b  torchvision ImageFolder + Resize(64) + CenterCrop(64) + ToTensor(), iterated once through
     DataLoader(num_workers=W, batch_size=128); worker start-up included. Writes nothing.
  c  one process, Pillow only: open, convert("RGB"), LANCZOS resize of the short side to 64,
     centre crop, numpy array. No draft mode, no pool.
  cli (with --cli) the `animegan prepare` command as a user runs it: wall-clock of the whole
     process, interpreter start included.
Every measurement runs in a fresh child process (timer started after its imports); the
variants are interleaved within each repeat so slow drifts of the machine's load hit all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (stdlib only: see common.py on forkserver and __main__)

SCRIPT = str(Path(__file__).resolve())
TARGETS = {"small": 1.5, "large": 4.0}  # a/b


# ---- the variants (each runs in its own child process) --------------------------------------

def variant_a(root: Path, out: Path, workers: int) -> dict:
    from animegan_cli.data.decode import DecodeOptions
    from animegan_cli.data.prepare import PrepareOptions, prepare

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = prepare(root, out, PrepareOptions(DecodeOptions(size=64), workers=workers))
    seconds = time.perf_counter() - t0
    assert not result.up_to_date
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "images": result.kept}


def variant_b(root: Path, out: Path, workers: int) -> dict:
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    t0 = time.perf_counter()
    tf = transforms.Compose([transforms.Resize(64), transforms.CenterCrop(64),
                             transforms.ToTensor()])
    ds = datasets.ImageFolder(str(root), transform=tf)
    loader = DataLoader(ds, batch_size=128, num_workers=workers)
    n = 0
    checksum = torch.zeros(())
    for x, _ in loader:
        n += x.shape[0]
        checksum += x[0, 0, 0, 0]  # touch the batch
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images": n}


def variant_c(root: Path, out: Path, workers: int) -> dict:
    import numpy as np
    from PIL import Image

    t0 = time.perf_counter()
    arrays = []
    for path in sorted((root / common.CLASS_DIR).iterdir()):
        with Image.open(path) as img:
            img = img.convert("RGB")
        w, h = img.size
        scale = 64 / min(w, h)
        nw, nh = max(64, round(w * scale)), max(64, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.LANCZOS)
        left, top = (nw - 64) // 2, (nh - 64) // 2
        arrays.append(np.asarray(img.crop((left, top, left + 64, top + 64))))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images": len(arrays)}


def variant_cli(root: Path, out: Path, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).with_name("animegan")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "animegan_cli"]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "prepare", str(root), "-o", str(out), "--size", "64",
                    "--workers", str(workers)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    count = json.loads((out / "manifest.json").read_text())["count"]
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "images": count}


VARIANTS = {"a": variant_a, "b": variant_b, "c": variant_c, "cli": variant_cli}
LABELS = {"a": "a: animegan prepare (library, W workers)",
          "b": "b: ImageFolder + DataLoader (W workers)",
          "c": "c: plain Pillow loop (1 process)",
          "cli": "cli: `animegan prepare` command (wall clock)"}


# ---- breakdown: where prepare's time goes -----------------------------------------------------

def breakdown(root: Path, out: Path, workers: int) -> dict:
    """Serial costs per image of each stage of prepare, and the pool's overheads."""
    import cProfile
    import io
    import multiprocessing
    import pstats

    from animegan_cli.data import prepare as prep
    from animegan_cli.data.decode import DecodeOptions, decode_file, pixel_hash
    from animegan_cli.data.packed import DatasetWriter
    from animegan_cli.data.scan import scan

    opts = DecodeOptions(size=64)
    res: dict = {}
    t = time.perf_counter()
    candidates, _ = scan(root)
    res["scan_s"] = time.perf_counter() - t
    n = len(candidates)
    paths = [c.path for c in candidates]
    t = time.perf_counter()
    arrays = [decode_file(p, opts)[0] for p in paths]
    res["decode_file_serial_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for a in arrays:
        pixel_hash(a)
    res["pixel_hash_s"] = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    writer = DatasetWriter(out, 64)
    for a in arrays:
        writer.append(a)
    writer.commit({"images": []}, prep._preview_png(writer.previews))
    res["writer_s"] = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    # The pool alone: start-up (forkserver + worker imports) and IPC of n results.
    chunk = max(1, min(64, n // (workers * 8)))
    for method in ("forkserver", "fork", "spawn"):
        ctx = multiprocessing.get_context(method)
        t = time.perf_counter()
        with ctx.Pool(workers) as pool:
            pool.apply(_noop)  # round trip: the pool is up and a worker has imported prepare
            t_up = time.perf_counter() - t
            list(pool.imap(_echo, ((p, opts) for p in paths), chunksize=chunk))
        res[f"pool_{method}_startup_s"] = t_up
        res[f"pool_{method}_total_echo_s"] = time.perf_counter() - t
    # The whole of prepare, in this process, with 1 and with W workers.
    for w in sorted({1, workers}):
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        prep.prepare(root, out, prep.PrepareOptions(opts, workers=w))
        res[f"prepare_workers{w}_s"] = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    # Profile of the parent during a pooled prepare (the workers are not in it).
    prof = cProfile.Profile()
    prof.enable()
    prep.prepare(root, out, prep.PrepareOptions(opts, workers=workers))
    prof.disable()
    shutil.rmtree(out, ignore_errors=True)
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(18)
    res["parent_profile"] = s.getvalue()
    # Profile of the serial decode of 300 images: the per-image cost inside decode.py.
    prof = cProfile.Profile()
    prof.enable()
    for p in paths[:300]:
        decode_file(p, opts)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(14)
    res["decode_profile"] = s.getvalue()
    res["images"] = n
    return res


def _noop() -> None:
    import animegan_cli.data.prepare  # noqa: F401  (what a real worker must import)


def _echo(job: tuple) -> tuple:
    """A job with the real IPC shape (path + options in, a 64x64x3 array out), no decoding."""
    import numpy as np

    return np.zeros((64, 64, 3), np.uint8), None, ""


# ---- the driver ------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=common.DEFAULT_WORKDIR)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--small", type=int, default=5000, help="number of ~96 px JPEGs")
    ap.add_argument("--large", type=int, default=300, help="number of ~1024 px JPEGs")
    ap.add_argument("--source", choices=("faces", "emoji"), default="faces",
                    help="content of the small folder (large is always generated faces)")
    ap.add_argument("--variants", default="a,b,c", help="comma list from a,b,c,cli")
    ap.add_argument("--cli", action="store_true", help="also time the `animegan prepare` CLI")
    ap.add_argument("--breakdown", action="store_true",
                    help="instead: per-stage costs and profiles of prepare on each folder")
    ap.add_argument("--json", type=Path, help="also write all raw figures here")
    ap.add_argument("--child", nargs=4, metavar=("VARIANT", "ROOT", "OUT", "WORKERS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        name, root, out, workers = args.child
        fn = breakdown if name == "breakdown" else VARIANTS[name]
        print(json.dumps(fn(Path(root), Path(out), int(workers))))
        return

    variants = [v for v in args.variants.split(",") if v]
    if args.cli and "cli" not in variants:
        variants.append("cli")
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    log = work / "prepare_throughput.log"
    folders = {"small": common.build_folder(work, "small", args.small, args.source),
               "large": common.build_folder(work, "large", args.large)}
    command = "python bench/prepare_throughput.py " + " ".join(sys.argv[1:])
    print(f"# prepare throughput  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"# machine: {common.machine_line()}")
    print(f"# reproduce: {command.strip()}")
    print(f"# W = {args.workers} workers for a and b; {args.repeats} repeats; "
          f"child stderr in {log}")
    for name, root in folders.items():
        mb = common.warm_page_cache(root) / 1e6
        print(f"# {name}: {root}  ({len(common.list_images(root))} files, {mb:.1f} MB)")

    if args.breakdown:
        for name, root in folders.items():
            print(f"\n## breakdown: {name} folder   (load average {common.load_average()})")
            res = common.run_child([SCRIPT, "--child", "breakdown", str(root),
                                    str(work / "out-breakdown"), str(args.workers)], log)
            n = res["images"]
            for k, v in res.items():
                if k.endswith("_s"):
                    print(f"  {k:32s} {v:8.3f} s   {1e3 * v / n:8.3f} ms/image   "
                          f"{n / v if v else 0:9.0f} images/s")
            print(res["parent_profile"])
            print(res["decode_profile"])
        return

    loads = [common.load_average()]
    raw: dict[str, dict[str, list[float]]] = {f: {v: [] for v in variants} for f in folders}
    for r in range(args.repeats):
        for fname, root in folders.items():
            for v in variants:
                res = common.run_child([SCRIPT, "--child", v, str(root),
                                        str(work / f"out-{v}"), str(args.workers)], log)
                rate = res["images"] / res["seconds"]
                raw[fname][v].append(rate)
                print(f"  repeat {r + 1} {fname:5s} {v:3s} {res['images']:6d} images "
                      f"{res['seconds']:7.2f} s {rate:9.1f} images/s   "
                      f"(load {common.load_average()})", flush=True)
        loads.append(common.load_average())

    print(f"\nload average (1, 5, 15 min) before and after each repeat: {' | '.join(loads)}")
    header = ["folder", *[f"{v} images/s" for v in variants]]
    ratios = [(x, y) for x, y in (("a", "b"), ("a", "c"), ("b", "c"), ("cli", "b"))
              if x in variants and y in variants]
    header += [f"{x}/{y}" for x, y in ratios] + ["target a/b"]
    rows = []
    for fname in folders:
        med = {v: common.median(raw[fname][v]) for v in variants}
        row = [f"{fname} ({len(common.list_images(folders[fname]))})"]
        row += [common.fmt(med[v], 0) for v in variants]
        row += [f"{med[x] / med[y]:.2f}x" for x, y in ratios]
        target = TARGETS[fname]
        verdict = ("met" if med["a"] / med["b"] >= target else "MISSED") \
            if "a" in med and "b" in med else ""
        row += [f">= {target}x {verdict}"]
        rows.append(row)
    print(f"\nmedians of {args.repeats} runs (ratios of medians):\n")
    print(common.markdown_table(header, rows))
    if args.json:
        args.json.write_text(json.dumps({"raw": raw, "loads": loads, "command": command},
                                        indent=1))


if __name__ == "__main__":
    main()
