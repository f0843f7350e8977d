"""Runs `animegan` once per job of a JSON list, in this one process: `batch_runner.py JOBS LOG`.

Each job is {"id", "argv", "cwd", "stdout", "stderr"}; fds 1 and 2 go to the job's files. One
JSON line per finished job is appended to LOG (exit code, peak memory growth, seconds): if a
job kills the process, the jobs after it have no line and the parent reports which one it was.
"""

import json
import os
import sys
import time

from child_io import redirect_output, run_cli


def status(key: str) -> int | None:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def run_job(job: dict) -> dict:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        before = status("VmRSS")
    except OSError:
        before = None
    os.chdir(job["cwd"])
    start = time.monotonic()
    saved = os.dup(1), os.dup(2)
    redirect_output(job["stdout"], job["stderr"])
    try:
        code = run_cli(job["argv"])
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    peak = status("VmHWM")
    growth = None if before is None or peak is None else peak - before
    return {"id": job["id"], "code": code, "growth": growth,
            "seconds": round(time.monotonic() - start, 3)}


def main(jobs_file: str, log_file: str) -> None:
    with open(jobs_file) as f:
        jobs = json.load(f)
    with open(log_file, "a") as log:
        for job in jobs:
            log.write(json.dumps(run_job(job)) + "\n")
            log.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
