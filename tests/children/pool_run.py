"""Run prepare's decoding pool on a folder in a fresh process and print what it yielded.

    python pool_run.py SCENARIO FOLDER WORKERS CHUNK [ARG]

A fresh interpreter (no torch imported) is what `animegan prepare` is, so the pool forks its
workers here as it does there, and they inherit the fault injected by a scenario:
  order         plain run
  threaded      plain run from a process with a second thread, where the pool must not fork
                (it starts its workers through a forkserver instead)
  crash NAME    decoding the file called NAME kills its worker with SIGSEGV, as a decoder bug
                on a hostile file would
  kill          after the first result, one worker is killed from outside (the OOM killer)
  close         take one result, close the iterator, report the workers still alive

Prints one JSON object: {"results": [[reason, detail, sha256 of the pixels or null], ...],
"alive_after": [pids of workers still running at the end], "parents": ["self" for a worker
this process forked, "other" for one a forkserver started]}.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
from pathlib import Path


def main() -> None:
    scenario, folder, workers, chunk, *rest = sys.argv[1:]
    from animegan_cli.data import pool
    from animegan_cli.data.decode import DecodeOptions, pixel_hash

    paths = sorted(str(p) for p in Path(folder).iterdir())
    if scenario == "threaded":
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    if scenario == "crash":
        real = pool.decode_file

        def crashing(path: str, opts: DecodeOptions):  # noqa: ANN202
            if os.path.basename(path) == rest[0]:
                os.kill(os.getpid(), signal.SIGSEGV)
            return real(path, opts)

        pool.decode_file = crashing
    results = pool.decode_in_order(paths, DecodeOptions(size=32), int(workers), int(chunk))
    out = []
    workers_seen: list[int] = []
    parents: list[str] = []
    for array, reason, detail in results:
        out.append([reason, detail, None if array is None else pixel_hash(array)])
        if len(out) == 1:
            workers_seen = [p.pid for p in multiprocessing.active_children()]
            parents = ["self" if _parent(pid) == os.getpid() else "other" for pid in workers_seen]
            if scenario == "kill":
                os.kill(workers_seen[0], signal.SIGKILL)
            elif scenario == "close":
                results.close()
                break
    alive = [pid for pid in workers_seen if _running(pid)]
    print(json.dumps({"results": out, "alive_after": alive, "parents": parents}))


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


if __name__ == "__main__":
    main()
