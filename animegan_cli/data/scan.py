"""Find every file under a folder that might be an image, and say why the others were skipped.

Content, not extension, decides what is an image (decode.py), so every regular non-empty file is
a candidate. The walk only uses stat calls: it must stay cheap on folders of 100k files, and its
result feeds the re-run signature of `prepare`.

Hostile trees are expected: symlink loops, broken links, unreadable folders, nesting deeper than
Python's recursion limit. None of them stop the scan; each becomes a `Skip` with a reason code
from `decode.REASONS`. A name that is not UTF-8 is only a name: its file is scanned like any
other, and `manifest_path` says how to write it down.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A regular, non-empty file to hand to the decoder."""

    path: str  # path to open: the root as given joined with the entry names
    # Path relative to the root, '/'-separated, as os.fsdecode gives it: exact, so bytes that
    # are not UTF-8 are lone surrogates. Written down through `manifest_path`.
    rel: str
    size: int  # st_size
    mtime_ns: int


@dataclass(frozen=True)
class Skip:
    """An entry the scan already knows is unusable."""

    rel: str  # as Candidate.rel
    reason: str  # a key of decode.REASONS
    detail: str = ""


def scan(root: str | os.PathLike[str]) -> tuple[list[Candidate], list[Skip]]:
    """Walk `root` recursively; return candidates and skips, each sorted by `rel`.

    Hidden entries (names starting with '.') are ignored silently. Symlinks are followed, to
    files and to directories, but each directory (by st_dev, st_ino) is listed once: a link to
    a directory that was already listed is a "symlink_loop" skip. Real directories are listed
    before linked ones so that, when a tree contains both, the real path is the one kept and
    the link is the one reported.

    Raises OSError only when `root` itself cannot be listed.
    """
    root_path = os.fspath(root)
    candidates: list[Candidate] = []
    skips: list[Skip] = []
    root_stat = os.stat(root_path)
    visited: dict[tuple[int, int], str] = {}  # directory identity -> rel where it was listed

    # (path, rel, identity); rel is "" for the root. Two queues so real directories are always
    # drained before symlinked ones; both are explicit, so depth is bounded by PATH_MAX only.
    real_dirs: list[tuple[str, str, tuple[int, int]]] = [
        (root_path, "", (root_stat.st_dev, root_stat.st_ino))]
    linked_dirs: deque[tuple[str, str, tuple[int, int]]] = deque()

    while real_dirs or linked_dirs:
        path, rel, identity = real_dirs.pop() if real_dirs else linked_dirs.popleft()
        if identity in visited:
            first = visited[identity] or "the top folder"
            skips.append(Skip(rel, "symlink_loop", f"leads to '{first}', which is already scanned"))
            continue
        visited[identity] = rel
        try:
            with os.scandir(path) as it:
                # Sorted so that which of two links to one directory counts as "first" does
                # not depend on the file system's listing order.
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if not rel:
                raise
            skips.append(Skip(rel, "unreadable", _os_detail(exc)))
            continue

        prefix = f"{rel}/" if rel else ""
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .git, .DS_Store, editor swap files: never user images
            entry_rel = prefix + entry.name
            st = _stat_entry(entry, entry_rel)
            if isinstance(st, Skip):
                skips.append(st)
            elif stat.S_ISDIR(st.st_mode):
                job = (entry.path, entry_rel, (st.st_dev, st.st_ino))
                if entry.is_symlink():
                    linked_dirs.append(job)
                else:
                    real_dirs.append(job)
            elif not stat.S_ISREG(st.st_mode):
                # FIFOs and devices would block or never end if read.
                skips.append(Skip(entry_rel, "unsupported", "not a regular file"))
            elif st.st_size == 0:
                skips.append(Skip(entry_rel, "empty", "0 bytes"))
            else:
                candidates.append(Candidate(entry.path, entry_rel, st.st_size, st.st_mtime_ns))

    # str order is code-point order, which equals the byte order of the UTF-8 encodings (a
    # name that is not UTF-8 sorts by its surrogates: another order, but as fixed).
    candidates.sort(key=lambda c: c.rel)
    skips.sort(key=lambda s: s.rel)
    return candidates, skips


def _stat_entry(entry: os.DirEntry[str], rel: str) -> os.stat_result | Skip:
    """stat() an entry, following symlinks; a failure becomes the Skip that explains it."""
    try:
        # os.stat rather than DirEntry.stat(): the latter leaves st_ino at 0 on Windows, and
        # directory identity is what stops symlink loops.
        return os.stat(entry.path)
    except FileNotFoundError:
        if entry.is_symlink():
            return Skip(rel, "broken_symlink", _broken_link_detail(entry.path))
        return Skip(rel, "unreadable", "file disappeared during the scan")
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link that resolves to itself, e.g. a -> b -> a
            return Skip(rel, "symlink_loop", "symbolic link resolves to itself")
        return Skip(rel, "unreadable", _os_detail(exc))


def _broken_link_detail(path: str) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        return "points to a missing file"
    return f"points to missing '{printable(target)}'"


def printable(path: str) -> str:
    """Printable, UTF-8-encodable form of a path: bytes that are not UTF-8 become '\\xff'
    escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def manifest_path(rel: str) -> dict[str, str]:
    """How a manifest names `rel`: {"path": text}, plus "path_bytes" when it is not UTF-8.

    A name on Linux is bytes, and JSON text cannot hold bytes that are not UTF-8: json.dumps
    would write the lone surrogates standing for them as "\\udcff" escapes, which are not
    Unicode and which strict JSON readers refuse. So "path" shows such bytes as backslash
    escapes ("caf\\xe9.png"), for people, and "path_bytes" holds the exact name in hex, for
    programs (`bytes.fromhex` gives it back; the escapes alone would be ambiguous with a name
    that really holds a backslash). UTF-8 names, nearly all, get "path" alone, as they are.
    """
    text = printable(rel)
    if text == rel:
        return {"path": rel}
    return {"path": text, "path_bytes": os.fsencode(rel).hex()}


def _os_detail(exc: OSError) -> str:
    return exc.strerror or str(exc)
