"""Atomic file output: a reader sees the old file or the new one, never half of either.

Everything the tool writes (datasets, checkpoints, PNGs, GIFs) goes through here, so a crash,
a kill or a full disk never leaves a truncated file in the place of a good one.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from animegan_cli.errors import UserError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success fsync it and rename it into place.

    The temporary name starts with '.' and ends in '.partial', so no loader ever mistakes it
    for a finished file, and a failure removes it. durable=False skips the fsyncs: the rename
    still means a killed process leaves whole files only, and the caller syncs a batch of
    files once at the end (`sync_files`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if durable:
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp_path, target)
        if durable:
            _fsync_dir(target.parent)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise disk_error(exc, target) from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def sync_files(paths: list[Path]) -> None:
    """fsync files written with durable=False, and their folders: the batch is on disk when
    this returns. One fsync per file after all are written costs little; one per file while
    writing them made `sample --out-dir` run at half the speed of plain writes."""
    try:
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise disk_error(exc, path) from exc
    for folder in dict.fromkeys(path.parent for path in paths):
        _fsync_dir(folder)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def disk_error(exc: OSError, target: Path) -> Exception:
    """Turn the OS errors a user can act on into a UserError; leave the rest alone."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return UserError(f"not enough disk space to write {target}: free some space or choose "
                         "another output folder (the previous file, if any, is intact)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(f"cannot write {target}: permission denied; choose a writable folder")
    return exc


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden temporary folder beside `target`; on success put it in `target`'s place.

    Write its files with the functions above (each is synced). A failure removes the temporary
    folder; what a kill left behind goes at the next call for the same target.
    """
    target = Path(target)
    tmp = temp_folder(target)
    try:
        yield tmp
        replace_folder(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise disk_error(exc, target) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def temp_folder(target: Path) -> Path:
    """A new hidden folder beside `target` (`.NAME.*.partial`) to build its replacement in,
    after removing what a killed earlier call for the same target left there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    # mkdtemp makes 0700, and that mode survives the rename: a dataset or cache shared with
    # teammates, or with a container running as another user, would be unreadable to them.
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def replace_folder(tmp: Path, target: Path) -> None:
    """Put the finished folder `tmp` (from `temp_folder`) in `target`'s place.

    Whatever was at `target` is moved aside first and removed after: a folder cannot be swapped
    in one rename, and this order means a crash leaves the old folder or the new one at
    `target` (or, killed between the two renames, the old one under a hidden `.partial` name
    beside it, removed by the next `temp_folder`), never a mix.
    """
    aside = tmp.with_name(f"{tmp.name.removesuffix('.partial')}.old.partial")
    replacing = target.exists() or target.is_symlink()
    if replacing:
        os.replace(target, aside)
    try:
        os.replace(tmp, target)
    except OSError:
        if replacing:
            os.replace(aside, target)  # the old folder back in its place
        raise
    _fsync_dir(target.parent)
    if replacing:
        shutil.rmtree(aside, ignore_errors=True)
