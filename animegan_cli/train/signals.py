"""Ctrl-C and SIGTERM during training: the first asks the loop to stop after the current step
and save a checkpoint; a second one leaves at once (every file is written atomically, so
leaving mid-write breaks nothing)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator


class StopSignals:
    def __init__(self, on_first: Callable[[], None]) -> None:
        self.on_first = on_first
        self.received: int | None = None  # the first signal's number

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM inside the block; the previous handlers come back after."""
        def handler(signum: int, frame: object) -> None:
            if self.received is not None:
                raise SystemExit(128 + signum)
            self.received = signum
            self.on_first()

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
