"""Turn one untrusted file into a square RGB uint8 array, or say exactly why it cannot be used.

Every file is treated as hostile. The pipeline, in order:

1. open: Pillow parses only the header, and only with the allow-listed plugins;
2. size checks from the header, before any pixel is decoded: "bomb", then "too_small";
3. JPEG only: ask libjpeg for a 1/2, 1/4 or 1/8 scale decode (`draft`);
4. decode the first frame; read the EXIF orientation, ignoring broken metadata;
5. any pixel mode -> 8-bit RGB, or RGBA when the image has transparency;
6. crop / pad / stretch to the output square, compositing alpha onto the background colour;
7. apply the EXIF orientation to the small output.

Every failure is a reason code from REASONS plus a human-readable detail; no exception escapes
except KeyboardInterrupt and SystemExit.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from io import BytesIO
from typing import BinaryIO, get_args

import numpy as np
from PIL import Image, ImageColor, UnidentifiedImageError

from animegan_cli.image_choices import CROPS, Filter

REASONS: dict[str, str] = {
    "empty": "the file is empty (0 bytes)",
    "truncated": "the image data ends early, as after an interrupted download or copy",
    "corrupt": "the image data is damaged and cannot be decoded",
    "not_image": "the content is not a recognised image, whatever the file extension says",
    "too_small": "the image is smaller than the minimum side length",
    "unreadable": "the file or folder could not be read (permission denied or I/O error)",
    "bomb": "the image is too large to decode safely (decompression bomb guard)",
    "broken_symlink": "a symbolic link whose target does not exist",
    "symlink_loop": "a symbolic link that leads back to a folder that was already scanned",
    "duplicate": "the same pixels as an image kept earlier",
    "unsupported": "an image format or file type this tool does not read "
    "(it reads JPEG, PNG, WebP, BMP, GIF and TIFF)",
}

# Each --filter choice as the Pillow resampling filter of the same name.
FILTERS: dict[str, Image.Resampling] = {
    name: Image.Resampling[name.upper()] for name in get_args(Filter)
}

# The only plugins Pillow may try: fewer parsers exposed to hostile bytes. MPO (the
# multi-picture JPEG most phone cameras write) is not listed because it has no opener of its
# own: the JPEG plugin returns an MPO image, and `formats=["MPO"]` raises KeyError.
_OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_ACCEPTED_FORMATS = frozenset(_OPEN_FORMATS) | {"MPO"}

# reducing_gap=3 lets Pillow shrink large images by an integer factor first: about 10x faster
# from a 12-megapixel source, with a mean difference under 0.5 levels. BOX is already a plain
# average, and an integer pre-reduction misaligns it with a non-integer crop box, so not BOX.
_REDUCING_GAP = 3.0

_EXIF_ORIENTATION = 0x0112
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Pillow reports data ending early with these words (checked lower-case). "broken data stream"
# is not one: it is libz/libjpeg saying the bytes themselves are wrong, i.e. "corrupt".
_TRUNCATION_HINTS = ("truncated", "not enough image data")

_SNIFF_BYTES = 512
_READ_WHOLE_BYTES = 32 << 20  # files up to this size are read into memory in one call
_ALLOWED_KINDS = frozenset({"JPEG", "PNG", "GIF", "WebP", "BMP", "TIFF"})
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"icns", "ICNS"),
    (b"v/1\x01", "OpenEXR"),
)
_HEIF_BRANDS = {
    b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"hevx": "HEIC", b"heim": "HEIC",
    b"heis": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF",
}
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}

# (pixels, None, "") on success, (None, reason code, detail) otherwise.
Result = tuple[np.ndarray | None, str | None, str]


@dataclass(frozen=True)
class DecodeOptions:
    size: int = 64  # output side, 32..512
    crop: str = "center"  # center | pad | stretch
    filter: str = "lanczos"  # lanczos | bicubic | box
    background: tuple[int, int, int] = (255, 255, 255)  # behind transparency and pad bands
    min_size: int | None = None  # None: size // 2. A shorter side than this -> "too_small"
    max_pixels: int = 64_000_000  # width * height above this, read from the header -> "bomb"

    def __post_init__(self) -> None:
        if not 32 <= self.size <= 512:
            raise ValueError(f"size must be between 32 and 512 pixels, got {self.size}")
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {', '.join(CROPS)}; got {self.crop!r}")
        if self.filter not in FILTERS:
            raise ValueError(f"filter must be one of {', '.join(FILTERS)}; got {self.filter!r}")
        background = tuple(self.background)
        if len(background) != 3 or not all(isinstance(c, (int, np.integer)) and 0 <= c <= 255
                                            for c in background):
            raise ValueError(f"background must be three integers 0-255, got {self.background!r}")
        # Accept a list (JSON, config files) or numpy ints, but store a plain tuple of ints so
        # options stay hashable and serialise the same way everywhere.
        object.__setattr__(self, "background", tuple(int(c) for c in background))
        if self.min_size is not None and self.min_size < 1:
            raise ValueError(f"min_size must be at least 1, got {self.min_size}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, got {self.max_pixels}")

    @property
    def min_side(self) -> int:
        """The effective minimum side: min_size, or half the output side when unset."""
        return self.size // 2 if self.min_size is None else self.min_size


def parse_color(text: str) -> tuple[int, int, int]:
    """Parse "white", "#ff8800", "#f80", "rgb(255,128,0)" or "255,128,0" into an RGB triple."""
    help_text = (f"invalid colour {text!r}: use a name such as 'white' or 'black', hex such as "
                 "'#ff8800', or three numbers 0-255 such as '255,128,0'")
    value = text.strip()
    if "," in value and not value.endswith(")"):
        parts = value.split(",")
        try:
            rgb = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(help_text) from None
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise ValueError(help_text)
        return rgb[0], rgb[1], rgb[2]
    try:
        color = ImageColor.getrgb(value)
    except ValueError:
        raise ValueError(help_text) from None
    if len(color) == 4 and color[3] != 255:
        raise ValueError(f"invalid colour {text!r}: the background must be opaque (no alpha)")
    return color[0], color[1], color[2]


def pixel_hash(arr: np.ndarray) -> str:
    """sha256 hex digest of the array's raw bytes in C order (equal pixels <=> equal hash)."""
    return hashlib.sha256(np.ascontiguousarray(arr).data).hexdigest()


def decode_file(path: str | os.PathLike[str], opts: DecodeOptions) -> Result:
    """Decode the file at `path`: (array, None, "") or (None, reason, detail)."""
    try:
        # O_NONBLOCK: a FIFO that appeared after the scan must not wait forever for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        return None, *_open_failure(path, exc)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # checked before fdopen, which refuses directories
        os.close(fd)
        return None, "unsupported", "not a regular file"
    if st.st_size > _READ_WHOLE_BYTES:
        with os.fdopen(fd, "rb") as fp:
            return _decode_stream(fp, opts)
    # Pillow's header parsers read a few bytes at a time: ~40 calls on a file object cost half
    # as much as decoding a small JPEG, and next to nothing on bytes in memory. One read of the
    # size seen by fstat: a file that shrinks meanwhile decodes as truncated.
    try:
        data = os.read(fd, st.st_size)
    except OSError as exc:
        return None, *_open_failure(path, exc)
    finally:
        os.close(fd)
    return decode_bytes(data, opts)


def decode_bytes(data: bytes, opts: DecodeOptions) -> Result:
    """The decode_file pipeline on bytes already in memory (tests and fuzzing)."""
    if not data:
        return None, "empty", "0 bytes"
    return _decode_stream(BytesIO(data), opts)


class _Rejected(Exception):
    """A decision of this module (not a Pillow error), carried out of the pipeline."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _decode_stream(fp: BinaryIO, opts: DecodeOptions) -> Result:
    try:
        return _decode(fp, opts), None, ""
    except _Rejected as exc:
        return None, exc.reason, exc.detail
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (2x Image.MAX_IMAGE_PIXELS, or the warning when a caller turned
        # warnings into errors): our max_pixels check usually fires first, but not always.
        return None, "bomb", str(exc)
    except MemoryError:
        return None, "bomb", "ran out of memory while decoding"
    except UnidentifiedImageError:
        return None, *_explain_unidentified(fp)
    except Exception as exc:  # hostile input: every decoder error maps to a reason
        return None, *_classify_error(exc, fp)


def _decode(fp: BinaryIO, opts: DecodeOptions) -> np.ndarray:
    with Image.open(fp, formats=_OPEN_FORMATS) as img:
        if img.format not in _ACCEPTED_FORMATS:
            raise _Rejected("unsupported", f"{img.format} images are not supported")
        width, height = img.size  # from the header: no pixel is decoded yet
        if width * height > opts.max_pixels:
            raise _Rejected("bomb", f"{width}x{height} is {width * height:,} pixels, over the "
                            f"limit of {opts.max_pixels:,}")
        if min(width, height) < opts.min_side:
            raise _Rejected("too_small", f"{width}x{height} has a side under {opts.min_side} px")
        if img.format in ("JPEG", "MPO"):
            # libjpeg scales by 1/2, 1/4 or 1/8 in the DCT domain while decoding, several
            # times faster on photos. Both sides stay >= 2x the output, so the resize below
            # still does the final, high-quality step. Must precede load().
            img.draft("RGB", (2 * opts.size, 2 * opts.size))
        # Multi-frame files (GIF, APNG, WebP, MPO, TIFF) open positioned on frame 0, and
        # load() decodes only the current frame: the first frame is what we get.
        img.load()
        orientation = _orientation(img)
        out = _fit(_to_rgb_or_rgba(img), opts)
    if orientation is not None:
        # Any EXIF transpose commutes with centre-crop, letterbox and stretch to a square, so
        # rotating the small output equals rotating the full image first, without the copy.
        out = out.transpose(orientation)
    return np.array(out, dtype=np.uint8)  # a fresh, writable, C-contiguous (size, size, 3)


def _orientation(img: Image.Image) -> Image.Transpose | None:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # broken EXIF/XMP is common; it must not cost the image
        return None
    return _ORIENTATION_TRANSPOSE.get(value) if isinstance(value, int) else None


def _has_alpha(img: Image.Image) -> bool:
    # Image.has_transparency_data needs Pillow >= 10.1; this is the same test. Note "LAB" has an
    # "A" band (a chroma axis), so checking getbands() for "A" would be wrong.
    if img.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in img.info:
        return True
    return img.mode == "P" and img.palette is not None and img.palette.mode.endswith("A")


def _to_rgb_or_rgba(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit "RGB", or "RGBA" when the image carries transparency.

    Transparency is kept (not dropped by convert("RGB"), which turns it black) so it can be
    composited onto the background after resizing. 16-bit, 32-bit and float greyscale go
    through _wide_to_uint8 because Pillow's own conversion clips them at 255 instead of
    scaling; a colour-key transparency on such images is ignored.
    """
    mode = img.mode
    try:
        if mode in ("I", "F") or mode.startswith("I;16"):
            return Image.fromarray(_wide_to_uint8(np.asarray(img), mode)).convert("RGB")
        if _has_alpha(img):
            if mode == "La":
                img = img.convert("LA")  # Pillow has no direct La -> RGBA conversion
            return img if img.mode == "RGBA" else img.convert("RGBA")
        return img if mode == "RGB" else img.convert("RGB")
    except ValueError as exc:  # a mode Pillow can decode but not convert
        raise _Rejected("unsupported", f"pixel mode {mode}: {exc}") from exc


def _wide_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit int and float greyscale -> uint8, by fixed rules.

    Fixed rather than per-image auto-levels, so images in one dataset keep their relative
    brightness:
    - I;16 (all byte orders): the top byte, value >> 8.
    - I: if every value is already in 0..255 it is 8-bit data in a wide container and is kept;
      otherwise it is treated as 16-bit data (what this mode holds in practice, e.g. 16-bit
      TIFF and PNG): clipped to 0..65535, then >> 8.
    - F: the 0..1 convention if the largest finite value is <= 1 (scaled by 255), else taken
      as 0..255; clipped, rounded; NaN and infinities become 0.
    """
    if mode == "F":
        finite = np.isfinite(a)
        peak = float(a[finite].max()) if finite.any() else 0.0
        scaled = np.where(finite, a, 0.0) * (255.0 if peak <= 1.0 else 1.0)
        return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)
    if mode == "I" and a.min() >= 0 and a.max() <= 255:
        return a.astype(np.uint8)
    return (np.clip(a, 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)


def _fit(img: Image.Image, opts: DecodeOptions) -> Image.Image:
    """RGB/RGBA image -> RGB opts.size square, per opts.crop, alpha composited on background.

    Resizing happens before compositing, on the smaller output: Pillow resizes RGBA with
    premultiplied alpha, so the result matches compositing first at full size.
    """
    side = opts.size
    resample = FILTERS[opts.filter]
    gap = None if resample == Image.Resampling.BOX else _REDUCING_GAP
    width, height = img.size
    if opts.crop == "pad":
        scale = side / max(width, height)
        fit_w, fit_h = max(1, round(width * scale)), max(1, round(height * scale))
        fitted = img.resize((fit_w, fit_h), resample, reducing_gap=gap)
        offset = ((side - fit_w) // 2, (side - fit_h) // 2)
    else:
        box = None
        if opts.crop == "center":
            square = min(width, height)
            left, top = (width - square) // 2, (height - square) // 2
            box = (left, top, left + square, top + square)
        fitted = img.resize((side, side), resample, box=box, reducing_gap=gap)
        if fitted.mode == "RGB":
            return fitted
        offset = (0, 0)
    # With an RGBA image as the mask, paste composites by its alpha onto the background.
    canvas = Image.new("RGB", (side, side), opts.background)
    canvas.paste(fitted, offset, fitted if fitted.mode == "RGBA" else None)
    return canvas


def _open_failure(path: str | os.PathLike[str], exc: OSError) -> tuple[str, str]:
    if isinstance(exc, PermissionError):
        return "unreadable", "permission denied"
    if isinstance(exc, FileNotFoundError):
        if os.path.islink(path):
            return "broken_symlink", "the link target does not exist"
        return "unreadable", "the file no longer exists (deleted after the scan?)"
    if exc.errno == errno.ELOOP:
        return "symlink_loop", "symbolic link resolves to itself"
    return "unreadable", exc.strerror or str(exc)


def _explain_unidentified(fp: BinaryIO) -> tuple[str, str]:
    """No allowed plugin accepted the header: say whether it is an image, and which kind."""
    head, total = _peek(fp)
    kind = _sniff(head)
    if kind is None:
        return "not_image", "the content is not a recognised image format"
    if kind not in _ALLOWED_KINDS:
        return "unsupported", f"{kind} images are not supported; convert them to PNG or JPEG"
    if _riff_truncated(head, total):
        return "truncated", f"the {kind} file is shorter than its header says"
    return "corrupt", f"starts like a {kind} file, but its header cannot be read"


def _classify_error(exc: Exception, fp: BinaryIO) -> tuple[str, str]:
    detail = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, OSError) and exc.errno is not None:
        return "unreadable", detail  # the OS failed to read; decoder errors carry no errno
    message = str(exc).lower()
    if (isinstance(exc, EOFError) or any(h in message for h in _TRUNCATION_HINTS)
            or _riff_truncated(*_peek(fp))):
        return "truncated", detail
    if "out of memory" in message or "too large" in message:  # e.g. PNG zTXt/iCCP bombs
        return "bomb", detail
    if "unsupported" in message or "not supported" in message:
        return "unsupported", detail
    return "corrupt", detail


def _peek(fp: BinaryIO) -> tuple[bytes, int]:
    """The first bytes and the total length of the stream (b"", 0 when it cannot be read)."""
    try:
        total = fp.seek(0, os.SEEK_END)
        fp.seek(0)
        return fp.read(_SNIFF_BYTES), total
    except (OSError, ValueError):
        return b"", 0


def _riff_truncated(head: bytes, total: int) -> bool:
    # libwebp only says "could not create decoder object" for a cut file; the RIFF header
    # states the full length, which tells truncation apart from damage.
    return (head[:4] == b"RIFF" and len(head) >= 8
            and int.from_bytes(head[4:8], "little") + 8 > total)


def _sniff(head: bytes) -> str | None:
    """Name an image format from its magic bytes; only used to explain files Pillow refused."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return _HEIF_BRANDS[head[8:12]]
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if head[:1] == b"P" and head[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6", b"7") \
            and head[2:3].isspace():
        return "PNM"
    text = head.lstrip()[:_SNIFF_BYTES].lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG"
    return None
