"""The packed dataset format: one raw uint8 image file plus a JSON manifest, in one folder.

    DATASET/
      images.u8      N x H x W x 3 uint8, C order, no header: memory-mappable as it is
      manifest.json  format version, shape, SHA-256 fingerprint of images.u8, options, counts,
                     every kept image's source and pixel hash, every skipped file's reason
      preview.png    the first images as a grid, for a person to look at

NHWC on disk is exactly PyTorch's channels_last layout for an NCHW tensor, so training reads
the file with a permute and no conversion. A dataset folder is built under a temporary name and
renamed into place only when complete, so a reader can never see a partial one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from animegan_cli.atomic import disk_error, replace_folder, temp_folder, write_bytes
from animegan_cli.errors import UserError, first_line

FORMAT = "animegan-dataset"
VERSION = 1
IMAGES_FILE = "images.u8"
MANIFEST_FILE = "manifest.json"
PREVIEW_FILE = "preview.png"
MAX_MANIFEST_BYTES = 512 * 1024 * 1024  # a million files' worth of entries; refuse beyond


@dataclass(frozen=True)
class PackedDataset:
    path: Path
    manifest: dict[str, Any]
    images: np.ndarray  # (N, H, W, 3) uint8, copy-on-write memory map: nothing read until used

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    @property
    def size(self) -> int:
        return int(self.manifest["height"])

    def __len__(self) -> int:
        return int(self.manifest["count"])


def is_dataset(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / MANIFEST_FILE).is_file() and (Path(path) / IMAGES_FILE).is_file()


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a manifest; any problem is a UserError telling how to rebuild."""
    path = Path(path)
    file = path / MANIFEST_FILE
    hint = f"re-create it with `animegan prepare SRC -o {path}`"
    try:
        if file.stat().st_size > MAX_MANIFEST_BYTES:
            raise UserError(f"{file} is implausibly large for a manifest; {hint}")
        manifest = json.loads(file.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"{path} is not a readable animegan dataset ({first_line(exc)}); "
                        f"{hint}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not an animegan dataset; {hint}")
    if manifest.get("version") != VERSION:
        raise UserError(f"{path} has dataset format version {manifest.get('version')!r}, this "
                        f"animegan reads version {VERSION}; {hint}")
    for key in ("count", "height", "width"):
        value = manifest.get(key)
        if type(value) is not int or value < 0 or (key != "count" and not 1 <= value <= 4096):
            raise UserError(f"{path}: manifest field {key!r} is invalid; {hint}")
    if not isinstance(manifest.get("fingerprint"), str):
        raise UserError(f"{path}: manifest has no fingerprint; {hint}")
    return manifest


def open_dataset(path: str | os.PathLike[str]) -> PackedDataset:
    """Memory-map a prepared dataset after checking that the file matches its manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    n, h, w = manifest["count"], manifest["height"], manifest["width"]
    expected = n * h * w * 3
    images_file = path / IMAGES_FILE
    try:
        actual = images_file.stat().st_size
    except OSError as exc:
        raise UserError(f"cannot read {images_file} ({first_line(exc)}); re-run prepare") from None
    if actual != expected:
        raise UserError(f"{images_file} holds {actual} bytes but the manifest promises {expected}: "
                        f"the dataset is damaged; re-create it with `animegan prepare`")
    if n == 0:
        raise UserError(f"{path} holds no images; prepare it from a folder with usable images")
    images = np.memmap(images_file, dtype=np.uint8, mode="c", shape=(n, h, w, 3))
    return PackedDataset(path, manifest, images)


class DatasetWriter:
    """Streams images into a new dataset folder; `commit` swaps it in atomically.

    Memory stays flat however many images there are: each is hashed and appended as it comes.
    """

    def __init__(self, out: str | os.PathLike[str], size: int) -> None:
        self.out = Path(out)
        self.size = size
        self.count = 0
        self.previews: list[np.ndarray] = []
        self._hash = hashlib.sha256()
        _check_target(self.out)
        try:
            self.tmp = temp_folder(self.out)
        except OSError as exc:
            raise disk_error(exc, self.out) from exc
        # A 1 MB buffer: one write call per ~85 images at 64 px instead of one per image.
        self._file = open(self.tmp / IMAGES_FILE, "wb", buffering=1 << 20)  # noqa: SIM115

    def append(self, image: np.ndarray, preview_slots: int = 64) -> None:
        data = np.ascontiguousarray(image, dtype=np.uint8)
        if data.shape != (self.size, self.size, 3):
            raise ValueError(f"expected a {self.size}x{self.size}x3 image, got {data.shape}")
        raw = memoryview(data).cast("B")
        try:
            self._file.write(raw)
        except OSError as exc:
            self.abort()
            raise disk_error(exc, self.out) from exc
        self._hash.update(raw)
        if len(self.previews) < preview_slots:
            self.previews.append(data)
        self.count += 1

    def commit(self, manifest: dict[str, Any], preview_png: bytes | None) -> None:
        """Finish the files, then replace any previous dataset at `out` (removed only once
        the new one is in its place)."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            manifest = {"format": FORMAT, "version": VERSION, "count": self.count,
                        "height": self.size, "width": self.size, "channels": 3,
                        "layout": "NHWC", "dtype": "uint8",
                        "fingerprint": self._hash.hexdigest(), **manifest}
            if preview_png is not None:
                write_bytes(self.tmp / PREVIEW_FILE, preview_png)
            write_bytes(self.tmp / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
            replace_folder(self.tmp, self.out)
        except OSError as exc:
            self.abort()
            raise disk_error(exc, self.out) from exc

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _check_target(out: Path) -> None:
    """Refuse to replace anything at `out` that is not an animegan dataset (or an empty folder)."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose another output path with -o")
    if any(out.iterdir()) and not is_dataset(out):
        raise UserError(f"{out} is a non-empty folder that is not an animegan dataset; "
                        "choose a new or empty output folder with -o")
