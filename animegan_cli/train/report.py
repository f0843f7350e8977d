"""What a run tells the person watching it: the start line, the live progress bar, the line
at each epoch's end, and the statistics behind them (summed on the device, read rarely)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from animegan_cli.metrics import METRICS
from animegan_cli.train.config import TrainConfig
from animegan_cli.train.state import Position

Update = Callable[[Position, dict[str, float]], None]


class Meter:
    """Training statistics summed on the device, read (one sync) only when shown or logged."""

    NAMES = ("loss_d", "loss_g", "d_real", "d_fake")

    def __init__(self, device: torch.device, ada: bool = False) -> None:
        # With adaptive augmentation the step also reports p, the augmentation probability.
        self.names = (*self.NAMES, "ada_p") if ada else self.NAMES
        self.sums = torch.zeros(len(self.names), device=device)
        self.count = 0
        self.pending = 0  # steps added since the last read
        self.images = 0
        self.start = self.last_read = time.perf_counter()
        self.shown: dict[str, float] = {}

    def add(self, stats: torch.Tensor, images: int) -> None:
        self.sums += stats
        self.count += 1
        self.pending += 1
        self.images += images

    def seconds_since_read(self) -> float:
        return time.perf_counter() - self.last_read

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def read(self) -> dict[str, float]:
        now = time.perf_counter()
        values = (self.sums / max(self.count, 1)).tolist()
        self.shown = dict(zip(self.names, values))
        self.shown["images_per_s"] = self.images / max(now - self.last_read, 1e-9)
        self.images, self.pending, self.last_read = 0, 0, now
        return self.shown

    def reset_interval(self) -> None:
        self.sums.zero_()
        self.count = 0


def start_line(config: TrainConfig, run: Path, step: int, limit: int, device: torch.device,
               precision: str, processes: int, data: str, placement: str, *,
               resuming: bool) -> str:
    """`starting step 0/400: dcgan 64px on cpu (fp32), 2000 built-in demo faces, ...`."""
    model = config.model_config()
    if config.precision == "auto" and precision == "bf16" and device.type == "cpu":
        precision = "bf16: this CPU has native bf16, --precision fp32 to turn it off"
    return (f"{'resuming at' if resuming else 'starting'} step {step}/{limit}: {model.arch} "
            f"{model.image_size}px on {device} ({precision}"
            f"{f', x{processes} processes' if processes > 1 else ''}), {data}, batch "
            f"{config.batch_size}, data in {placement} -> {run}"
            + ("\ntorch.compile: the first steps include compilation (about a minute on CPU, "
               "less with a warm cache)" if config.compile else ""))


def epoch_line(epoch: int, epochs: int, shown: dict[str, float],
               quality: dict[str, Any] | None, diversity: float, grid: object) -> str:
    """`epoch 3/50  loss_d 1.2 ...  diversity 0.93  swd 41.20 (best)  57 img/s  -> grid`."""
    stats = "  ".join(f"{k} {v:.3f}" for k, v in shown.items() if k != "images_per_s")
    stats += f"  diversity {diversity:.2f}"
    if quality is not None:
        stats += "".join(f"  {name} {quality[name]:.{metric.decimals}f}"
                         for name, metric in METRICS.items() if name in quality)
        stats += " (best)" if quality["best"] else ""
    return (f"epoch {epoch}/{epochs}  {stats}  {shown.get('images_per_s', 0):.0f} img/s  "
            f"-> {grid}")


@contextlib.contextmanager
def progress_display(out: Any, total: int, pos: Position, epochs: int,
                     enabled: bool) -> Iterator[Update]:
    """A transient rich progress bar over steps; yields the function that updates it."""
    if not enabled:
        yield lambda pos, shown: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                        TimeRemainingColumn(), console=out, transient=True)
    task = progress.add_task("train", total=total, completed=pos.step,
                             epoch=f"{pos.epoch + 1}/{epochs}", stats="")

    def update(pos: Position, shown: dict[str, float]) -> None:
        stats = (f"D {shown['loss_d']:.3f} G {shown['loss_g']:.3f} "
                 f"D(x) {shown['d_real']:.2f} D(G(z)) {shown['d_fake']:.2f} "
                 + (f"p {shown['ada_p']:.2f} " if "ada_p" in shown else "")
                 + f"{shown['images_per_s']:.0f} img/s")
        progress.update(task, completed=pos.step, stats=stats, epoch=f"{pos.epoch + 1}/{epochs}")

    with progress:
        yield update
