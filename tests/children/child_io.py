"""What the child-process scripts beside this file share: output capture and one CLI run.

These scripts run `animegan_cli.cli.main` inside a long-lived Python process (forked per run,
or in a loop), so the tests pay for importing torch once instead of once per case.
"""

from __future__ import annotations

import os
import sys
import traceback


def redirect_output(stdout: str, stderr: str) -> None:
    """Point fds 1 and 2 at these files, so output written from C is caught too."""
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, path in ((1, stdout), (2, stderr)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)


def run_cli(argv: list[str]) -> int:
    """`animegan ARGV` in this process: its exit code, as the `animegan` command would give."""
    from animegan_cli.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return code
