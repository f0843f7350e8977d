"""What a run leaves for people to read: metrics.jsonl, loss.png and optional TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from animegan_cli.errors import UserError
from animegan_cli.images import save_image
from animegan_cli.metrics import METRICS

# The quality metrics' colours are in their registry entries.
LOSS_COLOURS = {"loss_d": (214, 39, 40), "loss_g": (31, 119, 180)}


class MetricsLog:
    """Appends one JSON object per line; a resumed run keeps appending to the same file."""

    def __init__(self, path: Path, tensorboard: Path | None) -> None:
        """Log to `path`, and to a TensorBoard folder when one is given."""
        self.path = path
        self.writer = None if tensorboard is None else summary_writer()(str(tensorboard))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["step"])
            self.writer.flush()

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An (H, W, 3) uint8 image for TensorBoard's Images tab (none without TensorBoard);
        on disk with the next `write`."""
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a kill; the rest of the log is still good
        return out

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def summary_writer() -> type[Any]:
    """torch's TensorBoard SummaryWriter class; a UserError when the package is missing.

    The engine calls this before it creates the run folder, so a run refused for it leaves
    nothing behind.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: "
                        "pip install 'animegan-cli[tensorboard]'") from None
    return SummaryWriter


def plot_losses(records: list[dict[str, Any]], path: Path, width: int = 800) -> None:
    """Loss curves against step, with each logged quality metric of the registry in a panel
    of its own below (their scales differ by orders of magnitude), drawn with Pillow."""
    panels = [tuple(LOSS_COLOURS)]  # both losses share the first panel
    panels += [(k,) for k in METRICS if any(k in r for r in records)]
    height = 300 if len(panels) <= 2 else 220
    image = Image.new("RGB", (width, height * len(panels)), "white")
    draw = ImageDraw.Draw(image)
    steps = [r["step"] for r in records if isinstance(r.get("step"), int)]
    x_range = (min(steps), max(max(steps), min(steps) + 1)) if steps else (0, 1)
    for index, names in enumerate(panels):
        series = {k: [(r["step"], r[k]) for r in records
                      if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
                  for k in names}
        _panel(draw, series, x_range, (60, index * height + 20, width - 20,
                                       (index + 1) * height - 40))
    save_image(np.asarray(image), path)


def _panel(draw: ImageDraw.ImageDraw, series: dict[str, list[tuple[int, float]]],
           x_range: tuple[int, int], box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline=(120, 120, 120))
    values = [v for points in series.values() for _, v in points]
    if not values:
        return
    x0, x1 = x_range
    y0, y1 = min(0.0, min(values)), max(values) * 1.05
    if y1 - y0 < 1e-3:  # a flat series (precision 0 early on): a readable unit axis
        y1 = y0 + 1.0
    for frac in np.linspace(0, 1, 5):
        y = bottom - frac * (bottom - top)
        draw.line((left, y, right, y), fill=(230, 230, 230))
        draw.text((5, y - 6), f"{y0 + frac * (y1 - y0):.2f}", fill=(80, 80, 80))
    draw.text((left, bottom + 8), f"step {x0}", fill=(80, 80, 80))
    draw.text((right - 80, bottom + 8), f"step {x1}", fill=(80, 80, 80))
    for i, (name, points) in enumerate(series.items()):
        xy = [(left + (s - x0) / (x1 - x0) * (right - left),
               bottom - (v - y0) / (y1 - y0) * (bottom - top)) for s, v in points]
        colour = LOSS_COLOURS[name] if name in LOSS_COLOURS else METRICS[name].colour
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        draw.text((left + 10 + 90 * i, top + 5), name, fill=colour)
