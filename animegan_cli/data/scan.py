"""Find every file under a folder that might be an image, and say why the others were skipped.

Content, not extension, decides what is an image (decode.py), so every regular non-empty file is
a candidate. The walk only uses stat calls: it must stay cheap on folders of 100k files, and its
result feeds the re-run signature of `prepare`.

Hostile trees are expected: symlink loops, broken links, unreadable folders, names that are not
UTF-8, nesting deeper than Python's recursion limit. None of them stop the scan; each becomes a
`Skip` with a reason code from `decode.REASONS`.
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
    rel: str  # path relative to the root, '/'-separated; what the manifest shows
    size: int  # st_size
    mtime_ns: int


@dataclass(frozen=True)
class Skip:
    """An entry the scan already knows is unusable."""

    rel: str  # '/'-separated; undecodable bytes shown as backslash escapes
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
            if not _is_utf8(entry.name):
                detail = f"name is not valid UTF-8: {os.fsencode(entry.name)!r}; rename it"
                skips.append(Skip(_safe_text(entry_rel), "bad_filename", detail))
                continue
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

    # str order is code-point order, which equals the byte order of the UTF-8 encodings.
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
    return f"points to missing '{_safe_text(target)}'"


def _is_utf8(name: str) -> bool:
    # On POSIX, os.fsdecode maps undecodable bytes to lone surrogates, which UTF-8 rejects.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _safe_text(text: str) -> str:
    """Printable, UTF-8-encodable form of a path: bad bytes become '\\xff' escapes."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _os_detail(exc: OSError) -> str:
    return exc.strerror or str(exc)
