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
import common  # noqa: E402  (stdlib only: see common.py on __main__)

SCRIPT = str(Path(__file__).resolve())
TARGETS = {"small": 1.5, "large": 4.0}  # a/b


# ---- the variants (each runs in its own child process) --------------------------------------

def cpu_seconds() -> float:
    """CPU time of this process and of every descendant it has waited for (user + system)."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def variant_a(root: Path, out: Path, workers: int, filter: str = "lanczos") -> dict:
    from animegan_cli.data.decode import DecodeOptions
    from animegan_cli.data.prepare import PrepareOptions, prepare

    shutil.rmtree(out, ignore_errors=True)
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    result = prepare(root, out, PrepareOptions(DecodeOptions(size=64, filter=filter),
                                               workers=workers))
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    assert not result.up_to_date
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "cpu": cpu, "images": result.kept}


def _decode_in_order_mp_pool(paths, opts, workers, chunk):  # noqa: ANN001, ANN202
    """Experiment: prepare's decoding as it was up to 2026-11-29, a multiprocessing.Pool
    (fork) with imap over the same chunks; arrays come back pickled one by one."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_decode_job, ((p, opts) for p in paths), chunksize=chunk)


def _decode_job(job: tuple) -> tuple:
    from animegan_cli.data.decode import decode_file

    return decode_file(*job)


def _decode_all_threads(candidates, options):  # noqa: ANN001, ANN202
    """Experiment: prepare's decoding in a thread pool (Pillow drops the GIL in decode and
    resize), in sorted order, with at most 4 x workers images in flight."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from animegan_cli.data.decode import decode_file

    workers = options.workers or os.cpu_count() or 1
    window: deque = deque()
    with ThreadPoolExecutor(workers) as ex:
        for cand in candidates:
            window.append((cand, ex.submit(decode_file, cand.path, options.decode)))
            if len(window) >= 4 * workers:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()


def variant_a_threads(root: Path, out: Path, workers: int) -> dict:
    from animegan_cli.data import prepare as prep

    prep._decode_all = _decode_all_threads  # type: ignore[assignment]
    return variant_a(root, out, workers)


def variant_a_bicubic(root: Path, out: Path, workers: int) -> dict:
    return variant_a(root, out, workers, filter="bicubic")


def variant_a_box(root: Path, out: Path, workers: int) -> dict:
    return variant_a(root, out, workers, filter="box")


def variant_a_mp_pool(root: Path, out: Path, workers: int) -> dict:
    from animegan_cli.data import prepare as prep

    prep.decode_in_order = _decode_in_order_mp_pool  # type: ignore[assignment]
    return variant_a(root, out, workers)


def variant_b(root: Path, out: Path, workers: int) -> dict:
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    cpu0 = cpu_seconds()
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
    del loader  # its workers were joined when the iteration ended
    return {"seconds": seconds, "cpu": cpu_seconds() - cpu0, "images": n}


def variant_c(root: Path, out: Path, workers: int) -> dict:
    import numpy as np
    from PIL import Image

    cpu0 = cpu_seconds()
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
    return {"seconds": seconds, "cpu": cpu_seconds() - cpu0, "images": len(arrays)}


def variant_cli(root: Path, out: Path, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).with_name("animegan")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "animegan_cli"]
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    subprocess.run([*cmd, "prepare", str(root), "-o", str(out), "--size", "64",
                    "--workers", str(workers)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0  # the command and the workers it joined
    count = json.loads((out / "manifest.json").read_text())["count"]
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "cpu": cpu, "images": count}


VARIANTS = {"a": variant_a, "b": variant_b, "c": variant_c, "cli": variant_cli,
            "a_bicubic": variant_a_bicubic, "a_box": variant_a_box,
            "a_mp_pool": variant_a_mp_pool, "a_threads": variant_a_threads}
EXPERIMENTS = ("a_bicubic", "a_box", "a_mp_pool", "a_threads")
LABELS = {"a": "a: animegan prepare (library, W workers)",
          "b": "b: ImageFolder + DataLoader (W workers)",
          "c": "c: plain Pillow loop (1 process)",
          "cli": "cli: `animegan prepare` command (whole process: start-up, imports, workers)",
          "a_bicubic": "experiment: a with --filter bicubic (the default is lanczos)",
          "a_box": "experiment: a with --filter box",
          "a_mp_pool": "experiment: a decoding in a multiprocessing.Pool, as before 2026-11-29",
          "a_threads": "experiment: a decoding in a thread pool of W threads, no processes"}


# ---- breakdown: where prepare's time goes -----------------------------------------------------

def breakdown(root: Path, out: Path, workers: int) -> dict:
    """Serial costs per image of each stage of prepare, and the pool's overheads."""
    import cProfile
    import io
    import pstats

    import numpy as np
    from PIL import Image

    from animegan_cli.data import prepare as prep
    from animegan_cli.data.decode import DecodeOptions, decode_file, pixel_hash
    from animegan_cli.data.packed import DatasetWriter
    from animegan_cli.data.scan import scan
    from animegan_cli.images import make_grid

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
    # The preview grid: a fixed cost per run (PNG at Pillow's default compression, and at 1).
    grid = np.stack(arrays[:64])
    for level in (6, 1):
        t = time.perf_counter()
        buf = io.BytesIO()
        Image.fromarray(make_grid(grid, nrow=8)).save(buf, format="PNG", compress_level=level)
        res[f"preview_png_level{level}_s"] = time.perf_counter() - t
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


def pool_probe(root: Path, kind: str, workers: int) -> dict:
    """A fresh pool of one kind: start-up, then the IPC of prepare's results, no decoding."""
    import multiprocessing

    from animegan_cli.data import pool
    from animegan_cli.data.decode import DecodeOptions
    from animegan_cli.data.scan import scan

    opts = DecodeOptions(size=64)
    paths = [c.path for c in scan(root)[0]]
    chunk = max(1, min(64, len(paths) // (workers * 8)))
    cpu0 = cpu_seconds()
    t = time.perf_counter()
    if kind == "animegan":
        pool.decode_file = _echo  # the forked workers inherit the patch
        results = pool.decode_in_order(paths, opts, workers, chunk)
        next(results)
        startup = time.perf_counter() - t
        for _ in results:
            pass
    else:
        with multiprocessing.get_context("fork").Pool(workers) as mp_pool:
            mp_pool.map(_noop, range(workers), chunksize=1)  # every worker is up
            startup = time.perf_counter() - t
            list(mp_pool.imap(_echo_job, ((p, opts) for p in paths), chunksize=chunk))
    total = time.perf_counter() - t
    return {"startup_s": startup, "ipc_s": total - startup, "cpu_s": cpu_seconds() - cpu0,
            "images": len(paths)}


def _noop(_: int = 0) -> None:
    import animegan_cli.data.prepare  # noqa: F401  (what a real worker must import)


def _echo(path: str, opts: object) -> tuple:
    """decode_file's result shape (a 64x64x3 array), no decoding."""
    import numpy as np

    return np.zeros((64, 64, 3), np.uint8), None, ""


def _echo_job(job: tuple) -> tuple:
    return _echo(*job)


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
    ap.add_argument("--variants", default="a,b,c",
                    help="comma list from a,b,c,cli and the experiments")
    ap.add_argument("--cli", action="store_true", help="also time the `animegan prepare` CLI")
    ap.add_argument("--experiments", action="store_true",
                    help="also run " + ", ".join(EXPERIMENTS) + " (prepare with another filter, "
                         "or another way of running its decoders patched in the child process)")
    ap.add_argument("--grain", type=float, default=3.0,
                    help="noise sigma in the large JPEGs (3: photo-like ~195 KB, 0: smooth ~80 KB)")
    ap.add_argument("--breakdown", action="store_true",
                    help="instead: per-stage costs and profiles of prepare on each folder")
    ap.add_argument("--json", type=Path, help="also write all raw figures here")
    ap.add_argument("--child", nargs=4, metavar=("VARIANT", "ROOT", "OUT", "WORKERS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        name, root, out, workers = args.child
        if name.startswith("pool-"):
            print(json.dumps(pool_probe(Path(root), name[5:], int(workers))))
            return
        fn = breakdown if name == "breakdown" else VARIANTS[name]
        print(json.dumps(fn(Path(root), Path(out), int(workers))))
        return

    variants = [v for v in args.variants.split(",") if v]
    if args.cli and "cli" not in variants:
        variants.append("cli")
    if args.experiments:
        variants += [v for v in EXPERIMENTS if v not in variants]
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    log = work / "prepare_throughput.log"
    folders = {}  # a count of 0 leaves that folder out
    if args.small:
        folders["small"] = common.build_folder(work, "small", args.small, args.source)
    if args.large:
        folders["large"] = common.build_folder(work, "large", args.large, grain=args.grain)
    command = "python bench/prepare_throughput.py " + " ".join(sys.argv[1:])
    print(f"# prepare throughput  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"# machine: {common.machine_line()}")
    print(f"# reproduce: {command.strip()}")
    print(f"# W = {args.workers} workers for a and b; {args.repeats} repeats; "
          f"child stderr in {log}")
    for v in variants:
        print(f"#   {LABELS[v]}")
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
            print("  pool alone (fresh process each; worker start-up, then IPC of the results):")
            for method in ("animegan", "mp-pool"):
                pr = common.run_child([SCRIPT, "--child", f"pool-{method}", str(root), "-",
                                       str(args.workers)], log)
                print(f"    {method:20s} start-up {pr['startup_s']:6.3f} s   IPC "
                      f"{1e3 * pr['ipc_s'] / n:6.3f} ms/image   CPU {pr['cpu_s']:6.3f} s")
            print(res["parent_profile"])
            print(res["decode_profile"])
        return

    loads = [common.load_average()]
    # raw[folder][variant] = list of (images/s, CPU ms per image)
    raw: dict[str, dict[str, list[tuple[float, float]]]] = {
        f: {v: [] for v in variants} for f in folders}
    for r in range(args.repeats):
        for fname, root in folders.items():
            for v in variants:
                res = common.run_child([SCRIPT, "--child", v, str(root),
                                        str(work / f"out-{v}"), str(args.workers)], log)
                rate = res["images"] / res["seconds"]
                cpu_ms = 1e3 * res["cpu"] / res["images"]
                raw[fname][v].append((rate, cpu_ms))
                print(f"  repeat {r + 1} {fname:5s} {v:9s} {res['images']:6d} images "
                      f"{res['seconds']:7.2f} s {rate:9.1f} images/s  CPU {res['cpu']:6.2f} s "
                      f"({cpu_ms:.3f} ms/image)   load {common.load_average()}", flush=True)
        loads.append(common.load_average())

    print(f"\nload average (1, 5, 15 min) before and after each repeat: {' | '.join(loads)}")
    ratios = [(x, y) for x, y in (("a", "b"), ("a", "c"), ("b", "c"), ("cli", "b"),
                                  ("a_bicubic", "b"), ("a_box", "b"), ("a_mp_pool", "b"),
                                  ("a_threads", "b"), ("a", "a_mp_pool"))
              if x in variants and y in variants]
    wall_rows, cpu_rows = [], []
    for fname in folders:
        label = f"{fname} ({len(common.list_images(folders[fname]))})"
        rate = {v: common.median([x[0] for x in raw[fname][v]]) for v in variants}
        cpu = {v: common.median([x[1] for x in raw[fname][v]]) for v in variants}
        row = [label, *[common.fmt(rate[v], 0) for v in variants]]
        row += [f"{rate[x] / rate[y]:.2f}x" for x, y in ratios]
        if "a" in rate and "b" in rate:
            target = TARGETS[fname]
            row.append(f">= {target}x " + ("met" if rate["a"] / rate["b"] >= target
                                             else "MISSED"))
        wall_rows.append(row)
        cpu_v = [v for v in variants if v != "cli"]
        crow = [label, *[common.fmt(cpu[v], 3) for v in cpu_v]]
        crow += [f"{cpu[y] / cpu[x]:.2f}x" for x, y in ratios if "cli" not in (x, y)]
        cpu_rows.append(crow)
    header = ["folder", *[f"{v} images/s" for v in variants],
              *[f"{x}/{y}" for x, y in ratios]]
    if "a" in variants and "b" in variants:
        header.append("target a/b")
    print(f"\nwall-clock throughput, medians of {args.repeats} runs (ratios of medians):\n")
    print(common.markdown_table(header, wall_rows))
    cpu_v = [v for v in variants if v != "cli"]
    cpu_ratios = [(x, y) for x, y in ratios if "cli" not in (x, y)]
    print(f"\nCPU time per image, all processes (ms, medians of {args.repeats}); "
          "x/y = CPU(y) / CPU(x), above 1 means x does less work:\n")
    print(common.markdown_table(["folder", *[f"{v} CPU ms/image" for v in cpu_v],
                                 *[f"{x}/{y}" for x, y in cpu_ratios]], cpu_rows))
    if args.json:
        args.json.write_text(json.dumps({"raw": raw, "loads": loads, "command": command},
                                        indent=1))

if __name__ == "__main__":
    main()
