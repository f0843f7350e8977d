"""Imports torch and the CLI once, then forks a child per `animegan` run it is asked for.

Protocol, one JSON object per line on stdin, one reply per line on stdout ("ready" first):
{"run": argv, "stdout": path, "stderr": path} -> {"pid": pid}, the child in a new session;
{"wait": pid, "block": bool} -> {"code": exit code, or null while it still runs}.
"""

import json
import os
import sys

import torch  # noqa: F401 - the point: imported once, before any fork
from child_io import redirect_output, run_cli

import animegan_cli.cli  # noqa: F401
import animegan_cli.sample  # noqa: F401
import animegan_cli.train.engine  # noqa: F401

print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if "run" in request:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: a fresh session, files for output, then the CLI
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            redirect_output(request["stdout"], request["stderr"])
            code = 1
            try:
                code = run_cli(request["run"])
            finally:
                os._exit(code)
        reply = {"pid": pid}
    else:
        pid, status = os.waitpid(request["wait"], 0 if request["block"] else os.WNOHANG)
        reply = {"code": os.waitstatus_to_exitcode(status) if pid else None}
    print(json.dumps(reply), flush=True)
