"""Decode many files in worker processes and hand the results back in input order.

prepare's parallel engine. It is not multiprocessing.Pool, for three reasons:

- IPC cost. Pool pickles every array and passes it through a result-handler thread: about
  80 us of CPU per 64 px image, a sixth of the decode itself (bench/prepare_throughput.py,
  variant a_mp_pool). Here a worker answers a chunk with two messages, the statuses and then
  all its pixels as one buffer: about 20 us per image.
- Flat memory. Pool.imap queues every task at once and buffers results as fast as workers make
  them. Here each worker holds at most two chunks, and decoding stops running ahead when the
  consumer falls behind.
- Crashes. When a worker dies (a decoder crash on a hostile file, the OOM killer), Pool.imap
  waits forever. Here the worker is replaced, its chunk is retried one file at a time, and a
  file that kills a worker on its own is reported as "corrupt" instead of ending the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

import numpy as np

from animegan_cli.data.decode import DecodeOptions, Result, decode_file

Span = tuple[int, int]  # [start, stop) indices into the list of paths
# One entry per file of a span: None for an image (its pixels are in the span's buffer), or
# (reason, detail) for a skipped file.
Status = tuple[str | None, str] | None

_PER_WORKER = 2  # spans queued at a worker, so it starts the next while the parent reads one
_RUN_AHEAD = 4  # decoded spans per worker that may wait for the consumer before decoding pauses
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def decode_in_order(paths: Sequence[str], opts: DecodeOptions, workers: int,
                    chunk: int) -> Iterator[Result]:
    """decode_file(path, opts) for every path, yielded in the order of `paths`.

    Runs `workers` processes, each decoding `chunk` consecutive files per request. The arrays
    yielded are read-only views into a chunk's buffer. Closing the iterator early (or an
    exception, Ctrl-C included) ends the workers at once.
    """
    pool = _Pool(paths, opts, workers)
    try:
        yield from pool.results(chunk)
    finally:
        pool.close()


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    spans: deque[Span] = field(default_factory=deque)  # sent, not answered yet; oldest first


class _Pool:
    def __init__(self, paths: Sequence[str], opts: DecodeOptions, workers: int) -> None:
        # fork starts a worker 15x faster than forkserver, but only a single-threaded parent may
        # fork safely: once torch is imported (train on a raw folder) its OpenMP threads exist,
        # and forkserver gives clean workers instead.
        linux = sys.platform.startswith("linux")
        single_threaded = "torch" not in sys.modules and threading.active_count() == 1
        self.method = ("fork" if single_threaded else "forkserver") if linux else "spawn"
        self.ctx = multiprocessing.get_context(self.method)
        self.paths = paths
        self.opts = opts
        self.workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self.workers.append(self._start())
        except BaseException:  # e.g. fork failed for lack of memory: end those started
            self.close()
            raise

    def _start(self) -> _Worker:
        ours, theirs = self.ctx.Pipe()
        parent = os.getpid() if self.method == "fork" else None
        process = self.ctx.Process(target=_work, args=(theirs, self.paths, self.opts, parent),
                                   name="animegan-decode", daemon=True)
        process.start()
        theirs.close()  # only the worker holds its end: its death then reads as EOF here
        return _Worker(process, ours)

    def results(self, chunk: int) -> Iterator[Result]:
        total = len(self.paths)
        todo: deque[Span] = deque((i, min(i + chunk, total)) for i in range(0, total, chunk))
        done: dict[int, list[Result]] = {}  # span start -> its results, one per file
        position = 0
        while position < total:
            for worker in self.workers:
                # Decoding pauses while many decoded spans wait for a slower one, except for
                # spans that come before all of those (a retried head of the line).
                while (todo and len(worker.spans) < _PER_WORKER
                       and (len(done) < _RUN_AHEAD * len(self.workers) or todo[0][0] < min(done))):
                    span = todo.popleft()
                    try:
                        worker.conn.send(span)
                    except OSError:  # it died since its last answer
                        todo.appendleft(span)
                        self._replace(worker, todo, done)
                        break
                    worker.spans.append(span)
            busy = {w.conn: w for w in self.workers if w.spans}
            for conn in wait(list(busy)):
                worker = busy[conn]
                try:
                    statuses: list[Status] = conn.recv()
                    pixels = conn.recv_bytes()
                except (EOFError, OSError):
                    self._replace(worker, todo, done)
                    continue
                start, _ = worker.spans.popleft()
                done[start] = _unpack(statuses, pixels, self.opts.size)
            while position in done:
                results = done.pop(position)
                yield from results
                position += len(results)

    def _replace(self, dead: _Worker, todo: deque[Span], done: dict[int, list[Result]]) -> None:
        """A worker died: start another, retry its work, and blame a file only when it is alone."""
        dead.conn.close()
        dead.process.kill()  # in case it is alive after all: it no longer has a way to answer
        dead.process.join()
        how = _how_it_ended(dead.process.exitcode)
        retry = list(dead.spans)
        if retry:  # it died decoding the oldest span; the others never started
            start, stop = retry.pop(0)
            if stop - start == 1:
                done[start] = [(None, "corrupt", f"the decoder process died on this file ({how})")]
            else:
                retry += [(i, i + 1) for i in range(start, stop)]
        merged = sorted([*retry, *todo])  # todo stays in file order: its head is the oldest work
        todo.clear()
        todo.extend(merged)
        self.workers[self.workers.index(dead)] = self._start()

    def close(self) -> None:
        for worker in self.workers:
            worker.conn.close()
            worker.process.kill()  # decoders hold nothing that needs flushing
        for worker in self.workers:
            worker.process.join()


def _how_it_ended(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def _unpack(statuses: list[Status], pixels: bytes, size: int) -> list[Result]:
    images = iter(np.frombuffer(pixels, np.uint8).reshape(-1, size, size, 3))
    return [(next(images), None, "") if s is None else (None, s[0], s[1]) for s in statuses]


def _work(conn: Connection, paths: Sequence[str], opts: DecodeOptions, parent: int | None) -> None:
    """Worker loop: decode the span asked for, answer, repeat until the parent hangs up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it ends the workers
    if parent is not None:
        _die_with_parent(parent)
    while True:
        try:
            start, stop = conn.recv()
        except (EOFError, OSError):
            return
        statuses: list[Status] = []
        pixels = bytearray()
        for path in paths[start:stop]:
            array, reason, detail = decode_file(path, opts)
            if array is None:
                statuses.append((reason, detail))
            else:
                statuses.append(None)
                pixels += array.data
        try:
            conn.send(statuses)
            conn.send_bytes(pixels)
        except (BrokenPipeError, ConnectionResetError):
            return  # the parent is gone or has stopped listening: nothing to report to


def _die_with_parent(parent: int) -> None:
    """End this forked worker when prepare dies (kill -9 included).

    Forked workers would otherwise decode on as orphans, then print BrokenPipe tracebacks
    into the user's terminal when they report to the dead parent.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
