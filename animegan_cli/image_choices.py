"""The choices about image files that the CLI lists in its help, importable without numpy,
Pillow or torch: `animegan --help` and shell completion import this module at start-up, and
numpy and Pillow cost them about 100 ms.

How prepare crops and resamples is decoded in data/decode.py; what `sample` writes, in
images.py.
"""

from __future__ import annotations

from typing import Literal, get_args

# How prepare fits an image into a square, and the resampling filter that shrinks it (each
# filter's name is its Pillow resampling filter's, lower-cased).
Crop = Literal["center", "pad", "stretch"]
Filter = Literal["lanczos", "bicubic", "box"]
CROPS: tuple[str, ...] = get_args(Crop)

# The file formats `sample --out-dir` writes; FORMATS gives each one's Pillow name, in the
# same order.
ImageFormat = Literal["png", "jpg", "webp"]
FORMATS: dict[str, str] = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
# The file name endings an image written by name (`sample -o`) may have, and their formats.
SUFFIXES: dict[str, str] = {**{f".{name}": fmt for name, fmt in FORMATS.items()}, ".jpeg": "JPEG"}
