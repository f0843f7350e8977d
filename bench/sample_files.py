"""How fast `animegan sample --out-dir` writes its files, against a plain Pillow loop.

    python bench/sample_files.py                 # 2,000 64 px PNGs, median of 3 rounds
    python bench/sample_files.py -n 5000 --rounds 5 --format jpg

The same uint8 images (random pixels, so PNG cannot shrink them to nothing) are written three
ways, in alternating order each round, into fresh folders on the same file system:

  plain    Image.fromarray(a).save(path): no temporary file, no fsync (a kill can leave a
           truncated file under the final name)
  durable  images.save_image per file: temporary file, fsync, rename, fsync of the folder
           (what `sample --out-dir` did before)
  batched  what `sample --out-dir` does now: temporary file and rename per file, then
           atomic.sync_files once at the end (every file whole at any time, all on disk when
           the command returns)

Generating the images is left out: it costs the same for all three.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from animegan_cli.atomic import sync_files  # noqa: E402
from animegan_cli.image_choices import FORMATS  # noqa: E402
from animegan_cli.images import save_image  # noqa: E402


def plain(images: np.ndarray, folder: Path, fmt: str) -> None:
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"seed{i:06d}.{fmt}", format=FORMATS[fmt])


def durable(images: np.ndarray, folder: Path, fmt: str) -> None:
    for i, image in enumerate(images):
        save_image(image, folder / f"seed{i:06d}.{fmt}", FORMATS[fmt])


def batched(images: np.ndarray, folder: Path, fmt: str) -> None:
    files = []
    for i, image in enumerate(images):
        files.append(folder / f"seed{i:06d}.{fmt}")
        save_image(image, files[-1], FORMATS[fmt], durable=False)
    sync_files(files)


WAYS: dict[str, Callable[[np.ndarray, Path, str], None]] = {
    "plain": plain, "durable": durable, "batched": batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="files per way and round")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--format", choices=sorted(FORMATS), default="png")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=common.DEFAULT_WORKDIR / "sample_files")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(0).integers(0, 256, (args.n, args.size, args.size, 3),
                                               dtype=np.uint8)
    rates: dict[str, list[float]] = {name: [] for name in WAYS}
    names = list(WAYS)
    print(common.machine_line(), flush=True)
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            folder = Path(tempfile.mkdtemp(dir=args.workdir))
            start = time.perf_counter()
            WAYS[name](images, folder, args.format)
            rates[name].append(args.n / (time.perf_counter() - start))
            shutil.rmtree(folder)
    base = statistics.median(rates["plain"])
    print(f"\n{args.n} {args.size}px {args.format} files, median of {args.rounds} rounds")
    print("| way | files/s | vs plain |\n|---|---:|---:|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} | {median / base:.2f}x |")
    print(f"\nreproduce: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
