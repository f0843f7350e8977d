"""A folder of hostile and awkward inputs for scan + decode + prepare tests.

Plain helper module (not a conftest.py): `build_torture_folder(root)` fills `root` and returns
{rel: expected reason code, or None for files that must be kept}. The keys are exactly what
`scan()` reports as `Candidate.rel` or `Skip.rel`: every entry that is not hidden appears once,
with the outcome of scan followed by `decode_file` with default `DecodeOptions()` (size 64,
so min side 32). Hidden files (.DS_Store, .git/, .hidden.png) are created but must not appear.

`DUPLICATE_GROUPS` lists rels whose files are byte-identical (all kept here, since dedupe is
prepare's job); prepare with dedupe should keep the first of each group and skip the rest as
"duplicate". The symlink `links/to_good.jpg` points at `good/rgb.jpg`, so those two decode to
the same pixels too; that pair is `LINKED_DUPLICATES`. No other two kept entries share pixels
(for every crop mode), so dedupe on this folder skips exactly 2 files.

Entries that depend on the platform:
- running as root, chmod 000 does not stop reads: `perm/unreadable.png` is then expected kept
  and `perm/locked/inside.png` is listed instead of the `perm/locked` skip;
- where the file system refuses a non-UTF-8 name or FIFOs are unavailable, that entry is
  simply not created (and not in the mapping).

All images are tiny (<= 128 px); only the bomb's header claims a large size.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

DUPLICATE_GROUPS: tuple[tuple[str, ...], ...] = (("dup/a.png", "dup/b.png"),)
LINKED_DUPLICATES: tuple[str, str] = ("good/rgb.jpg", "links/to_good.jpg")
DEEP_LEVELS = 30
BAD_NAME = b"bad_\xffname.png"  # 0xff never occurs in UTF-8
BAD_NAME_REL = os.fsdecode(b"names/" + BAD_NAME)  # how scan() reports it: exact, as a str

_W, _H = 64, 48  # kept images: above the default min side of 32


def gradient(size: tuple[int, int] = (_W, _H), seed: int = 0) -> Image.Image:
    """A smooth RGB image that differs per seed (so images are not accidental duplicates)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1),
                    np.full_like(x, (seed * 37) % 256)], axis=-1)
    return Image.fromarray(arr.astype(np.uint8))


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid PNG header claiming width x height RGB pixels, with one tiny IDAT. Never
    allocates the pixels: the decoder must refuse it from the header alone."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def build_torture_folder(root: Path) -> dict[str, str | None]:
    """Create the torture folder under `root` (which should be empty); return rel -> reason."""
    expected: dict[str, str | None] = {}
    seeds = iter(range(1, 1000))

    def put(rel: str, data: bytes, reason: str | None) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[rel] = reason
        return path

    def put_image(rel: str, img: Image.Image, fmt: str, reason: str | None = None,
                  **params: object) -> Path:
        return put(rel, encode(img, fmt, **params), reason)

    def img(mode: str = "RGB") -> Image.Image:
        return gradient(seed=next(seeds)).convert(mode)

    # Good files, and content that contradicts the extension.
    put_image("good/rgb.jpg", img(), "JPEG")
    put_image("good/really_a_jpeg.png", img(), "JPEG")
    put_image("good/ünïcödé 画像.png", img(), "PNG")
    put("bad/text.jpg", b"this is a text file, not a JPEG\n" * 8, "not_image")

    # Every pixel mode a file can carry.
    put_image("modes/1.png", img("1"), "PNG")
    put_image("modes/L.png", img("L"), "PNG")
    put_image("modes/LA.png", img("LA"), "PNG")
    put_image("modes/P.png", img("P"), "PNG")
    put_image("modes/P_transparency.png", img("P"), "PNG", transparency=0)
    put_image("modes/P_transparency.gif", img("P"), "GIF", transparency=0)
    put_image("modes/RGB.png", img(), "PNG")
    put_image("modes/RGB_colour_key.png", img(), "PNG", transparency=(0, 0, 0))
    put_image("modes/RGBA.png", img("RGBA"), "PNG")
    put_image("modes/CMYK.jpg", img("CMYK"), "JPEG")
    put_image("modes/CMYK.tif", img("CMYK"), "TIFF")
    put_image("modes/PA.tif", img("PA"), "TIFF")
    put_image("modes/YCbCr.tif", img("YCbCr"), "TIFF")
    put_image("modes/LAB.tif", img("LAB"), "TIFF")
    ramp = np.linspace(0, 1, _W * _H).reshape(_H, _W)
    put_image("modes/I16.png", Image.fromarray((ramp * 65535).astype(np.uint16)), "PNG")
    # Different ramps, so that no two of these decode to the same pixels.
    put_image("modes/I.tif", Image.fromarray(((1 - ramp) * 65535).astype(np.int32)), "TIFF")
    put_image("modes/F.tif", Image.fromarray((ramp**2).astype(np.float32)), "TIFF")

    # Every accepted container, animated ones included.
    frames = [img(), img()]
    put_image("formats/x.webp", img(), "WEBP")
    put_image("formats/animated.webp", frames[0], "WEBP", save_all=True,
              append_images=frames[1:])
    put_image("formats/x.bmp", img(), "BMP")
    put_image("formats/animated.gif", frames[0], "GIF", save_all=True,
              append_images=frames[1:])
    put_image("formats/animated.png", frames[0], "PNG", save_all=True,
              append_images=frames[1:])
    put_image("formats/x.tif", img(), "TIFF", compression="tiff_deflate")
    put_image("formats/multi_picture.jpg", frames[0], "MPO", save_all=True,
              append_images=frames[1:])
    put_image("formats/icon.ico", img(), "ICO", reason="unsupported")
    put("formats/photo.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
        "unsupported")

    # EXIF orientation 6: stored landscape, displayed portrait.
    exif = Image.Exif()
    exif[0x0112] = 6
    put_image("exif/orientation6.jpg", img(), "JPEG", exif=exif.tobytes())

    # Damaged files.
    put("bad/empty.jpg", b"", "empty")
    jpeg = encode(img(), "JPEG")
    put("bad/truncated.jpg", jpeg[: len(jpeg) * 6 // 10], "truncated")
    noise = np.random.default_rng(3).integers(0, 256, (_H, _W, 3), dtype=np.uint8)
    png = encode(Image.fromarray(noise), "PNG")  # noise: IDAT is nearly the whole file
    put("bad/truncated.png", png[: len(png) * 6 // 10], "truncated")
    webp = encode(img(), "WEBP")
    put("bad/truncated.webp", webp[: len(webp) // 2], "truncated")
    put("bad/corrupt.png", _damage_idat(png), "corrupt")
    # Fixed seed, and a first byte that starts no image format.
    put("bad/random.bin", b"\x01" + np.random.default_rng(7).bytes(4095), "not_image")
    put_image("bad/tiny_1x1.png", Image.new("RGB", (1, 1), "red"), "PNG", reason="too_small")
    put("bad/bomb.png", bomb_png(), "bomb")

    # Links.
    links = root / "links"
    links.mkdir()
    os.symlink("does-not-exist.png", links / "broken")
    expected["links/broken"] = "broken_symlink"
    os.symlink(os.path.join("..", "good", "rgb.jpg"), links / "to_good.jpg")
    expected["links/to_good.jpg"] = None
    put_image("loop/inside.png", img(), "PNG")
    os.symlink("..", root / "loop" / "up")  # back to the top folder
    expected["loop/up"] = "symlink_loop"
    os.symlink("self", root / "loop" / "self")  # resolves to itself: ELOOP
    expected["loop/self"] = "symlink_loop"

    # Deep nesting.
    deep = "deep/" + "/".join(f"d{i:02d}" for i in range(DEEP_LEVELS))
    put_image(f"{deep}/bottom.png", img(), "PNG")

    # A name that is not UTF-8 is still a good image (some file systems, e.g. APFS, refuse to
    # create it).
    (root / "names").mkdir()
    try:
        fd = os.open(os.path.join(os.fsencode(root / "names"), BAD_NAME),
                     os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError:
        pass
    else:
        os.write(fd, encode(img(), "PNG"))
        os.close(fd)
        expected[BAD_NAME_REL] = None

    # Permissions: root reads through chmod 000.
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    put_image("perm/unreadable.png", img(), "PNG",
              reason=None if as_root else "unreadable").chmod(0o000)
    put_image("perm/locked/inside.png", img(), "PNG")
    (root / "perm" / "locked").chmod(0o000)
    if not as_root:
        del expected["perm/locked/inside.png"]
        expected["perm/locked"] = "unreadable"

    # Not a regular file: reading a FIFO would block forever.
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "bad" / "fifo")
        expected["bad/fifo"] = "unsupported"

    # Byte-identical duplicates.
    dup = encode(img(), "PNG")
    for rel in DUPLICATE_GROUPS[0]:
        put(rel, dup, None)

    # Hidden entries: silently ignored, so they are not in `expected`.
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    (root / "good" / ".hidden.png").write_bytes(encode(img(), "PNG"))

    return expected


def _damage_idat(png: bytes) -> bytes:
    """Overwrite the middle of the first IDAT payload (fixing its CRC, so only the compressed
    stream is wrong): zlib then reports a broken data stream."""
    start = png.index(b"IDAT") + 4
    length = struct.unpack(">I", png[start - 8:start - 4])[0]
    payload = bytearray(png[start:start + length])
    middle = len(payload) // 2
    payload[middle:middle + 16] = b"\xff" * 16
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(payload)))
    return png[:start] + bytes(payload) + crc + png[start + length + 4:]
