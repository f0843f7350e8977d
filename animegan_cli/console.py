"""Where every command's messages and progress bars go: stderr, so stdout keeps the result.

One console per process, shaped by two facts: `--quiet` (nothing but errors) and whether
stderr is a terminal. Piped into a file or a CI log, lines are not wrapped at 80 columns or
padded with spaces, so a log stays grep-able.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console

# done, total: what a long job reports after each batch or file.
ProgressFn = Callable[[int, int], None]
# label, done, total: a job of several stages (eval: generating, then Inception features).
StagedProgressFn = Callable[[str, int, int], None]

_quiet = False


def set_quiet(quiet: bool) -> None:
    """--quiet for this process: consoles made from now on print nothing."""
    global _quiet
    _quiet = quiet


class _Console(Console):
    def log(self, *objects: Any, **kwargs: Any) -> None:
        if self.is_terminal:
            super().log(*objects, **kwargs)
            return
        # rich's log renders a table as wide as the console: every line padded to the width,
        # and wrapped at 80 columns when that is unknown (a pipe). A plain line instead.
        self.print(time.strftime("[%X]"), *objects, soft_wrap=True, highlight=False)


def stderr_console() -> Console:
    """The console for messages: stderr, quiet under --quiet, unwrapped when not a terminal."""
    console = _Console(stderr=True, log_path=False, quiet=_quiet)
    console.soft_wrap = not console.is_terminal
    return console


@contextlib.contextmanager
def progress_bars(console: Console) -> Iterator[StagedProgressFn]:
    """Yields update(label, done, total): a transient bar with ETA per stage (label).

    No refresh thread: prepare forks its decoding workers, which is only safe from a
    single-threaded process, so a bar is redrawn by update, at most 10 times a second.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    if not console.is_terminal or console.quiet:  # a bar in a log file is only a blank line
        yield lambda label, done, total: None
        return
    with Progress("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True,
                  auto_refresh=False) as progress:
        tasks: dict[str, Any] = {}
        last = [0.0]

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                for task in tasks.values():  # a new stage: the last one is over
                    progress.update(task, visible=False)
                tasks[label] = progress.add_task(label, total=total)
            now = time.monotonic()
            # Called once per image by prepare: only every tenth of a second is worth drawing.
            if now - last[0] >= 0.1 or done == total:
                last[0] = now
                progress.update(tasks[label], completed=done, total=total, refresh=True)

        yield update


def stage(update: StagedProgressFn | None, label: str) -> ProgressFn | None:
    """`update` bound to one stage's label, for a job that reports done/total only."""
    if update is None:
        return None
    return lambda done, total: update(label, done, total)
