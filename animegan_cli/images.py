"""Image grids and image files shared by prepare's preview, training samples and `sample`.

Works on uint8 NHWC numpy arrays so that torch-free code (prepare) can use it too.
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from animegan_cli.atomic import atomic_path
from animegan_cli.errors import UserError
from animegan_cli.image_choices import SUFFIXES


def make_grid(images: np.ndarray, nrow: int = 8, padding: int = 2, fill: int = 0) -> np.ndarray:
    """Tile uint8 images (N, H, W, 3) into one (rows, nrow) grid with `padding` pixel gaps."""
    n, h, w, c = images.shape
    nrow = max(1, min(nrow, n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), fill,
                   dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = images[i]
    return grid


def format_for(path: str | os.PathLike[str]) -> str:
    """The Pillow format `path`'s ending asks for; any other ending is refused, so a file is
    never written in a format its name does not say."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in SUFFIXES:
        raise UserError(f"cannot write {os.path.basename(path)}: an image file must end in one "
                        f"of {', '.join(SUFFIXES)}")
    return SUFFIXES[suffix]


def save_image(array: np.ndarray, path: str | os.PathLike[str], fmt: str | None = None, *,
               durable: bool = True) -> None:
    """Save an HxWx3 uint8 array atomically; the format follows the suffix unless given.
    durable=False: the caller fsyncs a batch of images at the end (atomic.sync_files)."""
    fmt = fmt or format_for(path)
    image = Image.fromarray(array, "RGB")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    with atomic_path(path, durable=durable) as tmp:
        image.save(tmp, format=fmt, **options)
