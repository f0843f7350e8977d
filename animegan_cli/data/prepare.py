"""`animegan prepare`: any folder of images -> a packed dataset, with a report of every skip.

Scanning and decoding live in scan.py and decode.py, the worker processes in pool.py; this
module streams the results into a DatasetWriter in sorted-path order (so two runs are
byte-identical) and writes the manifest. It imports no torch: preparing data should not pay
for it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from animegan_cli import __version__
from animegan_cli.data.decode import REASONS, DecodeOptions, Result, decode_file, pixel_hash
from animegan_cli.data.packed import DatasetWriter, is_dataset, read_manifest
from animegan_cli.data.pool import decode_in_order
from animegan_cli.data.scan import Candidate, manifest_path, printable, scan
from animegan_cli.errors import UserError
from animegan_cli.images import make_grid

Progress = Callable[[int, int], None]  # (done, total)
_CHUNK_BYTES = 1 << 20
_CHUNK_OUT_BYTES = 8 << 20


@dataclass(frozen=True)
class PrepareOptions:
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    dedupe: bool = False
    limit: int | None = None
    workers: int = 0  # 0: all cores
    preview: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The options that decide the output bytes (workers do not)."""
        return {**asdict(self.decode), "dedupe": self.dedupe, "limit": self.limit}


@dataclass(frozen=True)
class PrepareResult:
    out: Path
    kept: int
    skipped: Counter[str]
    up_to_date: bool
    seconds: float
    replaced: bool = False  # a previous dataset at `out` gave way to this one


def source_signature(candidates: list[Candidate], options: PrepareOptions) -> str:
    """What the output depends on, from stat calls alone: a re-run can skip decoding entirely.
    The tool's version is part of it, since another version may decode the same files
    differently."""
    h = hashlib.sha256(json.dumps({**options.as_dict(), "tool_version": __version__},
                                  sort_keys=True).encode())
    for c in candidates:
        h.update(os.fsencode(c.rel) + f"\0{c.size}\0{c.mtime_ns}\n".encode())
    return h.hexdigest()


def prepare(src: str | os.PathLike[str], out: str | os.PathLike[str],
            options: PrepareOptions, progress: Progress | None = None, *,
            overwrite: bool = False) -> PrepareResult:
    """Pack the images under `src` into the dataset folder `out`.

    A dataset already at `out` that was made from the same folder with the same options is
    left alone when nothing changed there, and brought up to date when something did: that is
    what running the same command again asks for. Any other dataset there (another folder,
    other options, or one too damaged to tell) is replaced only with `overwrite`; anything else
    there is never replaced (DatasetWriter).
    """
    start = time.perf_counter()
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise UserError(f"source folder {src} does not exist or is not a folder; "
                        "pass a folder of images")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise UserError(f"the output {out} is inside the source folder {src}; "
                        "put it elsewhere so it is not scanned as input")
    root = printable(str(src.resolve()))
    replacing = is_dataset(out)
    old = _previous_dataset(out, root, options, overwrite) if replacing else None
    candidates, skips = scan(src)
    signature = source_signature(candidates, options)
    if old is not None and _section(old, "source").get("signature") == signature:
        counts = Counter(_section(_section(old, "counts"), "skipped"))
        return PrepareResult(out, old["count"], counts, True, time.perf_counter() - start)

    skipped: list[dict[str, str]] = [
        {**manifest_path(s.rel), "reason": s.reason, "detail": s.detail} for s in skips]
    kept: list[dict[str, str]] = []
    seen: dict[str, str] = {}  # pixel hash -> the printable path of the first image with it
    writer = DatasetWriter(out, options.decode.size)
    try:
        done = 0
        for cand, (array, reason, detail) in _decode_all(candidates, options):
            done += 1
            if progress:
                progress(done, len(candidates))
            if array is None:
                skipped.append({**manifest_path(cand.rel), "reason": reason or "corrupt",
                                "detail": detail})
                continue
            digest = pixel_hash(array)
            if options.dedupe and digest in seen:
                skipped.append({**manifest_path(cand.rel), "reason": "duplicate",
                                "detail": f"same pixels as {seen[digest]}"})
                continue
            seen.setdefault(digest, printable(cand.rel))
            if options.limit is not None and len(kept) >= options.limit:
                break
            writer.append(array)
            kept.append({**manifest_path(cand.rel), "hash": digest})
        if not kept:
            raise UserError(f"no usable images found in {src} ({len(skipped)} files skipped); "
                            "point prepare at a folder of JPEG, PNG, WebP, BMP, GIF or TIFF files")
        counts = Counter(s["reason"] for s in skipped)
        manifest = {
            # No timestamp: the same folder and options must give byte-identical output.
            "tool_version": __version__,
            "options": options.as_dict(),
            "source": {"root": root, "signature": signature},
            "counts": {"scanned": len(candidates) + len(skips), "kept": len(kept),
                       "skipped": dict(sorted(counts.items()))},
            "reasons": {k: REASONS[k] for k in sorted(counts) if k in REASONS},
            "images": kept,
            "skipped": sorted(skipped, key=lambda s: s["path"]),
        }
        preview = _preview_png(writer.previews) if options.preview else None
        writer.commit(manifest, preview)
    except BaseException:
        writer.abort()
        raise
    return PrepareResult(out, len(kept), counts, False, time.perf_counter() - start,
                         replaced=replacing)


def _previous_dataset(out: Path, root: str, options: PrepareOptions, overwrite: bool
                      ) -> dict[str, Any] | None:
    """The manifest of the dataset at `out` when this call may keep it if nothing changed;
    None when it is to be replaced whatever the source holds now.

    Refused here, before any work: replacing a dataset made from another folder or with other
    options, or one too damaged to tell, without `overwrite`.
    """
    try:
        old = read_manifest(out)
    except UserError:
        if overwrite:
            return None
        raise UserError(f"{out} holds a damaged animegan dataset; pass --overwrite to replace "
                        "it, or choose another -o") from None
    differences = _differences(old, root, options)
    if not differences:
        return old
    if overwrite:
        return None
    raise UserError(f"{out} already holds a dataset prepared {differences}; pass --overwrite "
                    "to replace it, or choose another -o")


def _differences(old: dict[str, Any], root: str, options: PrepareOptions) -> str:
    """How the dataset of manifest `old` was made otherwise than `root` and `options` ask, in
    words ("" when it was not)."""
    words = []
    old_root = _section(old, "source").get("root")
    if old_root != root:
        words.append(f"from {old_root}" if isinstance(old_root, str) else "from another folder")
    was = _section(old, "options")
    asked = json.loads(json.dumps(options.as_dict()))  # as a manifest holds them: no tuples
    changed = [f"{key} {_shown(was.get(key))} (now {_shown(value)})"
               for key, value in asked.items() if was.get(key) != value]
    if changed:
        words.append(f"with {', '.join(changed)}")
    return " ".join(words)


def _shown(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)


def _section(record: dict[str, Any], key: str) -> dict[str, Any]:
    """record[key] when it is an object; {} otherwise (a manifest from another version)."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _decode_all(candidates: list[Candidate], options: PrepareOptions
                ) -> Iterator[tuple[Candidate, Result]]:
    """Decode in sorted order; in worker processes when more than one core is asked for."""
    workers = options.workers or os.cpu_count() or 1
    workers = min(workers, max(1, len(candidates) // 16))  # tiny folders: pool start-up dominates
    paths = [c.path for c in candidates]
    if workers <= 1:
        for cand, path in zip(candidates, paths):
            yield cand, decode_file(path, options.decode)
        return
    # Chunks of about a megabyte of input and at most 8 MB of output: many small files amortise
    # the IPC, while a few large ones do not leave one worker decoding a long last chunk alone.
    mean_bytes = sum(c.size for c in candidates) / len(candidates)
    out_bytes = 3 * options.decode.size ** 2
    chunk = max(1, min(64, len(paths) // (workers * 8), int(_CHUNK_BYTES / mean_bytes),
                       _CHUNK_OUT_BYTES // out_bytes))
    yield from zip(candidates, decode_in_order(paths, options.decode, workers, chunk))


def _preview_png(previews: list[np.ndarray]) -> bytes | None:
    if not previews:
        return None
    buf = io.BytesIO()
    Image.fromarray(make_grid(np.stack(previews), nrow=8)).save(buf, format="PNG",
                                                                  compress_level=1)
    return buf.getvalue()
