"""Procedural anime-style faces: the built-in demo dataset.

No anime-face dataset can be downloaded where this tool runs, so the demo trains on faces drawn
here with Pillow. The layout is deliberately rigid (face centred, eyes on one line, hair framing
the face) so a small DCGAN can learn it in a few CPU minutes, while colours and styles vary
enough that samples are visibly different and mode collapse is easy to spot.
"""

from __future__ import annotations

import colorsys
import math
import os
import random
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# The file names export_demo writes (face_000000.png, face_000001.png, ...), and their pattern.
DEMO_NAME = "face_{:06d}.png"
DEMO_FILE = re.compile(r"face_\d{6}\.png")

# Faces are drawn at this multiple of the output size and reduced with LANCZOS: PIL draws
# without anti-aliasing, and the supersampling is what makes the 32-64 px images look smooth.
_SUPERSAMPLE = 4

_SKIN_TONES = [
    (255, 232, 216),  # porcelain
    (252, 220, 198),  # fair
    (245, 206, 180),  # light
    (232, 190, 158),  # tan
    (205, 155, 118),  # brown
    (160, 112, 80),  # dark
]
_HAIR_COLOURS = [
    (250, 140, 190),  # pink
    (80, 125, 235),  # blue
    (250, 220, 110),  # blonde
    (45, 40, 55),  # black
    (125, 78, 48),  # brown
    (205, 210, 225),  # silver
    (85, 190, 125),  # green
    (150, 90, 205),  # purple
    (215, 55, 65),  # red
    (245, 150, 60),  # orange
    (60, 190, 200),  # teal
]
_EYE_COLOURS = [
    (50, 110, 230),  # blue
    (40, 160, 90),  # green
    (200, 40, 60),  # red
    (140, 60, 200),  # violet
    (220, 150, 30),  # amber
    (120, 70, 40),  # brown
    (230, 90, 160),  # pink
    (30, 160, 170),  # teal
]
_HAIR_STYLES = ("short", "long", "twintails", "buns")
_MOUTHS = ("smile", "open", "small_o", "flat", "cat")

RGB = tuple[int, int, int]
Point = tuple[float, float]


def _shade(colour: RGB, factor: float) -> RGB:
    """Darken (<1) or lighten towards white (>1): line art and highlights derive from the fill,
    so every palette entry stays internally consistent without hand-picked extra colours."""
    if factor <= 1:
        return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]
    t = factor - 1
    return tuple(int(c + (255 - c) * t) for c in colour)  # type: ignore[return-value]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _jitter(rng: random.Random, colour: RGB, amount: int = 14) -> RGB:
    """Small per-channel noise so one palette entry yields a family of colours, not one value."""
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore


def _quad(p0: Point, p1: Point, p2: Point, n: int = 8) -> list[Point]:
    """Quadratic Bezier samples: hair strands and jaw lines need curves PIL cannot draw."""
    pts = []
    for i in range(n + 1):
        t = i / n
        a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t * t
        pts.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
    return pts


def _arc_pts(
    cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 16
) -> list[Point]:
    angles = (math.radians(a0 + (a1 - a0) * i / n) for i in range(n + 1))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


class _Pen:
    """Draws in unit design coordinates, so the face layout is written once, independent of
    output size, and the per-image jitter (scale, offset) is a single affine map applied here."""

    def __init__(self, img: Image.Image, scale: float, dx: float, dy: float) -> None:
        self.draw = ImageDraw.Draw(img)
        self.k = img.width * scale
        self.ox = img.width * (0.5 - 0.5 * scale + dx)
        self.oy = img.width * (0.5 - 0.5 * scale + dy)

    def _p(self, pts: list[Point]) -> list[Point]:
        return [(self.ox + self.k * x, self.oy + self.k * y) for x, y in pts]

    def _w(self, width: float) -> int:
        return max(1, round(self.k * width))

    def poly(
        self, pts: list[Point], fill: RGB | None, outline: RGB | None = None, width: float = 0.0
    ) -> None:
        self.draw.polygon(self._p(pts), fill=fill, outline=outline, width=self._w(width))

    def line(self, pts: list[Point], fill: RGB, width: float) -> None:
        self.draw.line(self._p(pts), fill=fill, width=self._w(width), joint="curve")

    def ellipse(
        self,
        cx: float,
        cy: float,
        rx: float,
        ry: float,
        fill: RGB | None,
        outline: RGB | None = None,
        width: float = 0.0,
    ) -> None:
        box = self._p([(cx - rx, cy - ry), (cx + rx, cy + ry)])
        self.draw.ellipse(box, fill=fill, outline=outline, width=self._w(width))


def _background(img: Image.Image, rng: random.Random) -> None:
    """Pastel plain or two-tone backgrounds, never busy: the GAN should spend capacity on faces."""
    hue = rng.random()
    c1 = _hsv(hue, rng.uniform(0.15, 0.4), rng.uniform(0.85, 1.0))
    c2 = _hsv((hue + rng.uniform(0.1, 0.5)) % 1, rng.uniform(0.15, 0.4), rng.uniform(0.8, 1.0))
    img.paste(c1, (0, 0, img.width, img.height))
    kind, s = rng.randrange(3), img.width
    if kind == 1:
        img.paste(c2, (0, int(s * rng.uniform(0.55, 0.8)), s, s))
    elif kind == 2:
        y0, y1 = s * rng.uniform(0.2, 0.8), s * rng.uniform(0.2, 0.8)
        ImageDraw.Draw(img).polygon([(0, y0), (s, y1), (s, s), (0, s)], fill=c2)


def _hsv(h: float, s: float, v: float) -> RGB:
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _back_hair(pen: _Pen, style: str, hair: RGB, line: RGB, accent: RGB) -> None:
    """Hair behind the head: this is where the styles differ most in silhouette."""
    lw = 0.008
    if style == "long":
        pts = _arc_pts(0.5, 0.42, 0.36, 0.36, 180, 360)
        pts += [(0.90, 0.7), (0.93, 1.05), (0.07, 1.05), (0.10, 0.7)]
    else:  # a bob behind the cheeks; other short styles add their features below
        pts = _arc_pts(0.5, 0.42, 0.355, 0.35, 180, 360) + _arc_pts(0.5, 0.6, 0.355, 0.16, 0, 180)
    if style == "twintails":
        for side in (-1, 1):
            x = 0.5 + side * 0.31
            tail = _quad((x, 0.22), (0.5 + side * 0.62, 0.45), (0.5 + side * 0.42, 1.05), 10)
            tail += _quad((0.5 + side * 0.36, 1.05), (0.5 + side * 0.38, 0.5), (x, 0.30), 10)
            pen.poly(tail, hair, line, lw)
            pen.ellipse(x, 0.26, 0.035, 0.035, accent, _shade(accent, 0.6), 0.006)
    elif style == "buns":
        for side in (-1, 1):
            pen.ellipse(0.5 + side * 0.27, 0.12, 0.11, 0.10, hair, line, lw)
    pen.poly(pts, hair, line, lw)


def _body(pen: _Pen, skin: RGB, line: RGB, clothes: RGB) -> None:
    shadow = _shade(skin, 0.85)
    pen.poly([(0.43, 0.75), (0.57, 0.75), (0.57, 1.05), (0.43, 1.05)], shadow, line, 0.006)
    pen.poly(
        [
            (-0.05, 1.1),
            (-0.02, 0.98),
            (0.18, 0.92),
            (0.40, 0.91),
            (0.5, 1.02),
            (0.60, 0.91),
            (0.82, 0.92),
            (1.02, 0.98),
            (1.05, 1.1),
        ],
        clothes,
        _shade(clothes, 0.55),
        0.008,
    )


def _face(pen: _Pen, skin: RGB, line: RGB, chin: float) -> None:
    """Wide cheeks narrowing to a small pointed chin: the anime face silhouette."""
    top = _arc_pts(0.5, 0.58, 0.29, 0.38, 180, 360)
    right = _quad((0.79, 0.58), (0.78, chin - 0.1), (0.52, chin), 8)
    left = [(1 - x, y) for x, y in reversed(right)]
    pen.poly(top + right + left, skin, line, 0.008)


def _eye(
    pen: _Pen, ex: float, ey: float, ew: float, eh: float, side: int, iris: RGB, lash: RGB
) -> None:
    """Tall sclera, big iris touching the upper lid, pupil and two highlights: the elements
    that make a drawn face read as 'anime'. side = +1 for the right eye (outer corner at +x)."""

    def mx(x: float) -> float:  # mirror so the lash flick always points outward
        return ex + side * (x - ex)

    pen.ellipse(ex, ey, ew, eh, (252, 252, 255))
    pen.ellipse(ex, ey + eh * 0.08, ew * 0.64, eh * 0.86, iris, _shade(iris, 0.45), 0.006)
    pen.ellipse(ex, ey + eh * 0.42, ew * 0.46, eh * 0.42, _shade(iris, 1.35))
    pen.ellipse(ex, ey + eh * 0.08, ew * 0.30, eh * 0.45, _shade(iris, 0.25))
    pen.ellipse(mx(ex - ew * 0.28), ey - eh * 0.30, ew * 0.24, ew * 0.24, (255, 255, 255))
    pen.ellipse(mx(ex + ew * 0.25), ey + eh * 0.45, ew * 0.10, ew * 0.10, (255, 255, 255))
    # Upper lid: a band whose lower edge overlaps the top of the sclera (so no white shows
    # above it) and which thickens towards the outer corner, ending in a flick.
    angles = range(185, 356, 10)
    lower = [
        (ex + ew * math.cos(math.radians(a)), ey + eh * 0.8 * math.sin(math.radians(a)))
        for a in angles
    ]
    upper = [
        (
            ex + ew * 1.1 * math.cos(math.radians(a)),
            ey + (eh + 0.012 + 0.012 * (a - 185) / 170) * math.sin(math.radians(a)),
        )
        for a in angles
    ]
    band = lower + [(ex + ew * 1.32, ey - eh * 0.15)] + upper[::-1]
    pen.poly([(mx(x), y) for x, y in band], lash)
    lower_lid = _arc_pts(ex, ey, ew * 0.95, eh * 0.98, 20, 70, 6)
    pen.line([(mx(x), y) for x, y in lower_lid], lash, 0.007)


def _mouth(pen: _Pen, kind: str, y: float, line: RGB) -> None:
    red, pink = (150, 40, 50), (240, 120, 130)
    if kind == "smile":
        pen.line(_quad((0.465, y), (0.5, y + 0.03), (0.535, y)), line, 0.008)
    elif kind == "open":
        pen.poly(_quad((0.46, y), (0.5, y + 0.075), (0.54, y)), red, line, 0.006)
        pen.ellipse(0.5, y + 0.03, 0.018, 0.01, pink)
    elif kind == "small_o":
        pen.ellipse(0.5, y + 0.01, 0.016, 0.02, red, line, 0.006)
    elif kind == "flat":
        pen.line([(0.475, y + 0.01), (0.525, y + 0.01)], line, 0.008)
    else:  # cat mouth, a small 'w'
        pen.line(
            _quad((0.46, y), (0.48, y + 0.03), (0.5, y))
            + _quad((0.5, y), (0.52, y + 0.03), (0.54, y))[1:],
            line,
            0.007,
        )


def _front_hair(pen: _Pen, rng: random.Random, hair: RGB, line: RGB, lock_end: float) -> None:
    """Hair cap, side locks and jagged bangs drawn as one outlined polygon over the face,
    so the hairline and the face edge are always crisp and in the same place."""
    cap = _arc_pts(0.5, 0.42, 0.35, 0.35, 180, 360)
    right_lock = _quad((0.85, 0.42), (0.85, lock_end - 0.1), (0.78, lock_end), 6)
    right_lock += _quad((0.78, lock_end), (0.76, 0.5), (0.70, 0.38), 6)[1:]
    # Bangs: spikes between the locks with random count, length and lean.
    n = rng.randint(4, 6)
    xs = [0.70 - 0.40 * i / n for i in range(n + 1)]
    bangs: list[Point] = []
    for i in range(n):
        gap = (xs[i], rng.uniform(0.27, 0.33) if i else 0.38)
        tip_x = (xs[i] + xs[i + 1]) / 2 + rng.uniform(-0.03, 0.03)
        tip = (tip_x, rng.uniform(0.39, 0.47))
        nxt = (xs[i + 1], 0.38 if i == n - 1 else 0.30)
        bangs += _quad(gap, (gap[0], (gap[1] + tip[1]) / 2), tip, 4)
        bangs += _quad(tip, (nxt[0], (nxt[1] + tip[1]) / 2), nxt, 4)[1:]
    left_lock = [(1 - x, y) for x, y in reversed(right_lock)]
    pen.poly(cap + right_lock + bangs + left_lock, hair, line, 0.009)
    # "Angel ring" highlight: the glossy band anime uses to make hair read as hair.
    pen.line(_arc_pts(0.5, 0.42, 0.25, 0.25, 215, 325, 10), _shade(hair, 1.35), 0.02)
    if rng.random() < 0.3:  # ahoge, the single stray strand on top
        pen.line(_quad((0.5, 0.08), (0.47, -0.02), (0.56, 0.0)), line, 0.012)


def render_face(seed: int, size: int = 64) -> Image.Image:
    """One face, fully determined by (seed, size): training data and tests can be regenerated
    anywhere without storing files. Uses a private RNG so callers' random state is untouched."""
    rng = random.Random(seed)
    big = size * _SUPERSAMPLE
    img = Image.new("RGB", (big, big))
    _background(img, rng)

    skin = _jitter(rng, rng.choice(_SKIN_TONES), 6)
    hair = _jitter(rng, rng.choice(_HAIR_COLOURS))
    iris = hair if rng.random() < 0.3 else _jitter(rng, rng.choice(_EYE_COLOURS))
    hair_line = _shade(hair, 0.45)
    skin_line = _mix(_shade(skin, 0.55), (120, 40, 40), 0.3)
    style = rng.choice(_HAIR_STYLES)
    mouth = rng.choice(_MOUTHS)
    clothes = _hsv(rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.4, 0.95))
    accent = _hsv(rng.random(), 0.7, 0.95)
    lock_end = {"short": 0.70, "long": 0.98, "twintails": 0.80, "buns": 0.68}[style]
    lock_end += rng.uniform(-0.04, 0.04)
    chin = rng.uniform(0.85, 0.89)
    ew, eh = rng.uniform(0.066, 0.08), rng.uniform(0.085, 0.105)
    eye_dx, eye_y = rng.uniform(0.125, 0.14), rng.uniform(0.575, 0.595)
    blush = rng.random() < 0.5

    # Small jitter only: centred, near-constant layout keeps the data easy for a DCGAN.
    pen = _Pen(img, rng.uniform(0.99, 1.08), rng.uniform(-0.025, 0.025), rng.uniform(-0.02, 0.02))
    _back_hair(pen, style, hair, hair_line, accent)
    _body(pen, skin, skin_line, clothes)
    _face(pen, skin, skin_line, chin)
    if blush:
        for side in (-1, 1):
            pen.ellipse(0.5 + side * 0.16, 0.70, 0.055, 0.022, _mix(skin, (255, 110, 130), 0.45))
    for side in (-1, 1):
        brow_x, brow_y = 0.5 + side * eye_dx, eye_y - eh - 0.045
        pen.line(
            _quad(
                (brow_x - side * 0.05, brow_y + 0.008),
                (brow_x, brow_y - 0.012),
                (brow_x + side * 0.055, brow_y + 0.004),
            ),
            hair_line,
            0.009,
        )
        _eye(pen, 0.5 + side * eye_dx, eye_y, ew, eh, side, iris, (40, 25, 30))
    pen.line([(0.505, 0.70), (0.498, 0.715)], skin_line, 0.006)
    _mouth(pen, mouth, 0.77, skin_line)
    _front_hair(pen, rng, hair, hair_line, lock_end)
    return img.resize((size, size), Image.LANCZOS)


def demo_array(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """A batch as uint8 (n, size, size, 3). Image i is render_face(seed * 1_000_003 + i, size):
    the large prime stride keeps batches from different seeds disjoint for any realistic n,
    and any single image of a batch can be reproduced on its own."""
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        out[i] = np.asarray(render_face(seed * 1_000_003 + i, size))
    return out


def export_demo(out: str | os.PathLike[str], n: int, size: int = 64, seed: int = 0) -> list[Path]:
    """Write the demo set as numbered PNG files into the folder `out`, for users who want it as a
    plain folder. The folder is built beside `out` and renamed into place, so a folder of
    earlier demo faces is replaced whole (no stale faces from a larger N stay behind); a folder
    holding anything else is refused, never written into."""
    from animegan_cli.atomic import atomic_folder, sync_files
    from animegan_cli.errors import UserError

    if n < 1 or not 16 <= size <= 512:
        raise UserError("--demo needs a positive count and a --size from 16 to 512")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose another -o")
    if out.is_dir():
        foreign = next((p.name for p in out.iterdir() if not DEMO_FILE.fullmatch(p.name)), None)
        if foreign is not None:
            raise UserError(f"{out} holds {foreign!r}, which is not a demo face: --demo writes a "
                            "new folder or replaces one of demo faces; choose another -o")
    names = [DEMO_NAME.format(i) for i in range(n)]
    with atomic_folder(out) as tmp:
        for i, name in enumerate(names):
            render_face(seed * 1_000_003 + i, size).save(tmp / name, format="PNG")
        sync_files([tmp / name for name in names])  # once for all: no fsync per face
    return [out / name for name in names]
