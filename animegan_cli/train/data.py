"""The images a run trains on: the built-in demo set, a prepared dataset, or a raw folder
prepared once into the cache (so the second run on the same folder starts at once)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animegan_cli.errors import UserError
from animegan_cli.model_config import IMAGE_SIZES
from animegan_cli.train import distributed as dist


@dataclass(frozen=True)
class TrainData:
    images: np.ndarray  # (N, H, W, 3) uint8
    fingerprint: str
    description: str
    path: Path | None = None  # the prepared dataset's folder; None for the in-memory demo set


def load_data(data: str | None, demo: int, size: int, info: dist.DistInfo) -> TrainData:
    """The demo set (`demo` images), or `data`: a prepared dataset or a raw image folder."""
    if demo:
        from animegan_cli.data.demo import demo_array

        images = demo_array(demo, size)
        digest = hashlib.sha256(images.tobytes()).hexdigest()
        return TrainData(images, digest, f"{demo} built-in demo faces")
    from animegan_cli.data.packed import is_dataset, open_dataset

    assert data is not None
    path = Path(data)
    if not path.exists():
        raise UserError(f"{path} does not exist; pass a folder of images or a prepared dataset "
                        "(or --demo to train on built-in faces)")
    if not is_dataset(path):
        if not path.is_dir():
            raise UserError(f"{path} is not a folder; pass a folder of images or a prepared "
                            "dataset made by `animegan prepare`")
        path = _prepare_into_cache(path, size, info)
    ds = open_dataset(path)
    if ds.size != size:
        # Offer only a size training takes: a dataset prepared by an older version may have
        # any other.
        keep = f"pass --image-size {ds.size}, or " if ds.size in IMAGE_SIZES else ""
        raise UserError(f"{data} holds {ds.size} px images but training is at {size} px; "
                        f"{keep}prepare again with --size {size}")
    return TrainData(ds.images, ds.fingerprint, f"{len(ds)} images from {data}", ds.path)


def prepared_image_size(data: str | None) -> int | None:
    """The size a prepared dataset was made at (a raw folder or the demo set: None)."""
    if not data:
        return None
    from animegan_cli.data.packed import is_dataset, read_manifest

    return read_manifest(data)["height"] if is_dataset(data) else None


def _prepare_into_cache(src: Path, size: int, info: dist.DistInfo) -> Path:
    from animegan_cli.console import stderr_console
    from animegan_cli.data.decode import DecodeOptions
    from animegan_cli.data.prepare import PrepareOptions, prepare
    from animegan_cli.paths import cache_dir

    # fsencode: a folder name need not be UTF-8 (the key is the same for every one that is).
    key = hashlib.sha256(os.fsencode(src.resolve()) + f"|{size}".encode()).hexdigest()[:16]
    target = cache_dir() / "datasets" / f"{src.resolve().name}-{size}px-{key}"
    if info.is_main:
        # The cache entry is named for this folder and size: whatever it holds (an older
        # version's defaults, a damaged copy) is ours to replace.
        result = prepare(src, target, PrepareOptions(DecodeOptions(size=size)), overwrite=True)
        if not result.up_to_date:
            stderr_console().log(f"prepared {result.kept} images from {src} into {target} "
                          f"({sum(result.skipped.values())} skipped, see its manifest.json)")
    dist.barrier(info)
    return target
