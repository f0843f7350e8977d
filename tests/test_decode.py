"""Tests for scanning (animegan_cli.data.scan) and decoding (animegan_cli.data.decode)."""

from __future__ import annotations

import inspect
import io
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest_torture import (
    BAD_NAME,
    BAD_NAME_REL,
    DUPLICATE_GROUPS,
    LINKED_DUPLICATES,
    bomb_png,
    build_torture_folder,
    encode,
    gradient,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, JpegImagePlugin

from animegan_cli.data import decode as decode_module
from animegan_cli.data.decode import (
    REASONS,
    DecodeOptions,
    Result,
    decode_bytes,
    decode_file,
    parse_color,
    pixel_hash,
)
from animegan_cli.data.scan import Candidate, manifest_path, scan

# Feeding damaged files on purpose: Pillow's UserWarnings about them (corrupt EXIF, short
# reads) are expected noise here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
posix_only = pytest.mark.skipif(os.name != "posix", reason="needs symlinks, FIFOs and chmod")


def close(pixel: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tol))


def bars(colours: list[tuple[int, int, int]], bar_w: int, h: int) -> Image.Image:
    """Vertical bars of the given colours, left to right."""
    arr = np.concatenate([np.full((h, bar_w, 3), c, np.uint8) for c in colours], axis=1)
    return Image.fromarray(arr)


def decoded(data: bytes, **options: object) -> np.ndarray:
    arr, reason, detail = decode_bytes(data, DecodeOptions(**options))
    assert arr is not None, f"{reason}: {detail}"
    return arr


# --- the torture folder ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def torture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    if os.name != "posix":
        pytest.skip("the torture folder needs symlinks, FIFOs and chmod")
    root = tmp_path_factory.mktemp("torture")
    return root, build_torture_folder(root)


@pytest.fixture(scope="module")
def outcomes(torture: tuple[Path, dict[str, str | None]]) -> dict[str, Result]:
    """rel -> (array, reason, detail) after scan + decode_file, as prepare does it."""
    root, _ = torture
    candidates, skips = scan(root)
    result: dict[str, Result] = {s.rel: (None, s.reason, s.detail) for s in skips}
    for cand in candidates:
        result[cand.rel] = decode_file(cand.path, DecodeOptions())
    return result


def test_every_torture_entry_gets_its_expected_reason(torture, outcomes):
    _, expected = torture
    got = {rel: reason for rel, (_, reason, _) in outcomes.items()}
    wrong = {rel: (expected.get(rel, "<absent>"), got.get(rel, "<absent>"), outcomes.get(rel))
             for rel in expected.keys() | got.keys() if expected.get(rel, 0) != got.get(rel, 0)}
    assert not wrong, "rel: (expected, got, outcome)\n" + "\n".join(
        f"{rel}: {v[:2]} {v[2][2] if v[2] else ''}" for rel, v in sorted(wrong.items()))


def test_kept_images_are_square_contiguous_uint8(outcomes):
    kept = [arr for arr, reason, _ in outcomes.values() if reason is None]
    assert len(kept) > 30
    for arr in kept:
        assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8
        assert arr.flags.c_contiguous and arr.flags.writeable


def test_every_skip_has_a_documented_reason_and_a_detail(outcomes):
    for rel, (arr, reason, detail) in outcomes.items():
        if reason is not None:
            assert arr is None and reason in REASONS and detail, rel
        else:
            assert detail == "", rel


def test_hidden_entries_are_ignored(outcomes):
    assert not [rel for rel in outcomes if any(p.startswith(".") for p in rel.split("/"))]


def test_exactly_the_listed_duplicates_share_pixels(outcomes):
    groups: dict[str, list[str]] = {}
    for rel, (arr, reason, _) in sorted(outcomes.items()):
        if reason is None:
            groups.setdefault(pixel_hash(arr), []).append(rel)
    shared = sorted(tuple(rels) for rels in groups.values() if len(rels) > 1)
    assert shared == sorted([*DUPLICATE_GROUPS, LINKED_DUPLICATES])


def test_a_name_that_is_not_utf8_is_kept_and_written_down_reversibly(torture, outcomes):
    _, expected = torture
    if BAD_NAME_REL not in expected:
        pytest.skip("this file system refused a non-UTF-8 name")
    assert outcomes[BAD_NAME_REL][1] is None
    entry = manifest_path(BAD_NAME_REL)
    assert entry["path"] == "names/bad_\\xffname.png"  # readable, and encodable as UTF-8
    assert bytes.fromhex(entry["path_bytes"]) == b"names/" + BAD_NAME  # exact
    assert manifest_path("good/ünïcödé 画像.png") == {"path": "good/ünïcödé 画像.png"}


# --- scan ------------------------------------------------------------------------------------


def test_scan_is_sorted_deterministic_and_slash_separated(torture):
    root, _ = torture
    first, second = scan(root), scan(str(root))
    assert first == second
    candidates, skips = first
    assert [c.rel for c in candidates] == sorted(c.rel for c in candidates)
    assert [s.rel for s in skips] == sorted(s.rel for s in skips)
    deep = next(c for c in candidates if c.rel.endswith("bottom.png"))
    assert deep.rel.count("/") == 31 and "\\" not in deep.rel
    assert Path(deep.path) == root / deep.rel
    assert deep.size == os.stat(deep.path).st_size
    assert deep.mtime_ns == os.stat(deep.path).st_mtime_ns


@posix_only
def test_scan_survives_symlink_loops_and_prefers_real_paths(tmp_path):
    (tmp_path / "z_real" / "sub").mkdir(parents=True)
    (tmp_path / "z_real" / "sub" / "img.png").write_bytes(b"x")
    os.symlink("z_real", tmp_path / "a_link")  # sorts first, but the real path must win
    os.symlink("..", tmp_path / "z_real" / "sub" / "up")
    os.symlink(".", tmp_path / "z_real" / "here")
    os.symlink("ping", tmp_path / "pong")
    os.symlink("pong", tmp_path / "ping")

    start = time.perf_counter()
    candidates, skips = scan(tmp_path)
    assert time.perf_counter() - start < 1
    assert [c.rel for c in candidates] == ["z_real/sub/img.png"]
    assert {s.rel: s.reason for s in skips} == {
        "a_link": "symlink_loop", "z_real/here": "symlink_loop",
        "z_real/sub/up": "symlink_loop", "ping": "symlink_loop", "pong": "symlink_loop"}


@posix_only
def test_scan_follows_links_to_directories_outside_the_root(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "pic.png").write_bytes(b"x")
    (tmp_path / "root").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "root" / "linked")
    candidates, skips = scan(tmp_path / "root")
    assert [c.rel for c in candidates] == ["linked/pic.png"] and skips == []


def test_scan_nests_deeper_than_the_recursion_limit(tmp_path):
    # A recursive walk would need a Python frame per level: with the limit lowered to 40
    # frames above this test, 120 levels can only be scanned iteratively.
    levels = 120
    path = tmp_path
    for _ in range(levels):
        path = path / "d"
        path.mkdir()
    (path / "f.png").write_bytes(b"x")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 40)
    try:
        candidates, skips = scan(tmp_path)
    finally:
        sys.setrecursionlimit(limit)
    assert [c.rel for c in candidates] == ["d/" * levels + "f.png"] and skips == []


def test_scan_raises_for_a_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError):
        scan(tmp_path / "missing")


def test_candidate_is_a_frozen_record():
    cand = Candidate("/x/a.png", "a.png", 3, 4)
    with pytest.raises(AttributeError):
        cand.size = 5  # type: ignore[misc]


# --- decode: transparency, crops, orientation --------------------------------------------------


def _transparent_with_red_centre(kind: str) -> bytes:
    """48x48, fully transparent except an opaque red 16x16 centre, in several encodings."""
    mask = np.zeros((48, 48), bool)
    mask[16:32, 16:32] = True
    if kind in ("RGBA.png", "RGBA.webp"):
        arr = np.zeros((48, 48, 4), np.uint8)
        arr[mask] = (255, 0, 0, 255)
        fmt = "PNG" if kind.endswith("png") else "WEBP"
        return encode(Image.fromarray(arr), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    if kind == "LA.png":
        arr = np.zeros((48, 48, 2), np.uint8)
        arr[mask] = (76, 255)
        return encode(Image.fromarray(arr), "PNG")  # 2 channels: mode LA
    if kind in ("P.png", "P.gif"):
        img = Image.fromarray(mask.astype(np.uint8)).convert("P")
        img.putpalette([0, 0, 0, 255, 0, 0])
        return encode(img, kind[-3:].upper(), transparency=0)
    if kind == "RGB_colour_key.png":
        arr = np.zeros((48, 48, 3), np.uint8)
        arr[mask] = RED
        return encode(Image.fromarray(arr), "PNG", transparency=(0, 0, 0))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["RGBA.png", "RGBA.webp", "LA.png", "P.png", "P.gif",
                                  "RGB_colour_key.png"])
@pytest.mark.parametrize("background", [WHITE, (10, 200, 30)])
def test_transparency_is_composited_onto_the_background(kind, background):
    arr = decoded(_transparent_with_red_centre(kind), background=background)
    for corner in (arr[0, 0], arr[0, -1], arr[-1, 0], arr[-1, -1], arr[5, 32]):
        assert close(corner, background, tol=1), corner  # not black: no "black halo" bug
    assert not close(arr[32, 32], background, tol=30)
    if background == WHITE and kind != "LA.png":
        # Red over white keeps red = 255 everywhere, edges included: resizing with straight
        # (not premultiplied) alpha would drag in the black of transparent pixels there.
        assert arr[..., 0].min() >= 245


def test_wide_image_crop_modes():
    # Thirds: red | green | blue, 192x64.
    data = encode(bars([RED, GREEN, BLUE], 64, 64), "PNG")
    centre = decoded(data, crop="center")
    assert close(centre.reshape(-1, 3).mean(axis=0), GREEN, tol=1)

    stretch = decoded(data, crop="stretch")
    for row in (1, 32, 62):
        assert close(stretch[row, 4], RED) and close(stretch[row, 32], GREEN)
        assert close(stretch[row, 59], BLUE)

    pad = decoded(data, crop="pad", background=(40, 40, 40))
    # 192x64 -> 64x21 image, centred: grey bands above and below.
    assert close(pad[:19].reshape(-1, 3).mean(axis=0), (40, 40, 40), tol=1)
    assert close(pad[45:].reshape(-1, 3).mean(axis=0), (40, 40, 40), tol=1)
    assert close(pad[32, 4], RED) and close(pad[32, 32], GREEN) and close(pad[32, 59], BLUE)


def test_tall_image_pad_puts_bands_left_and_right():
    tall = bars([RED, BLUE], 16, 128)  # 32x128
    pad = decoded(encode(tall, "PNG"), crop="pad")
    assert close(pad[:, :22].reshape(-1, 3).mean(axis=0), WHITE, tol=1)
    assert close(pad[:, 42:].reshape(-1, 3).mean(axis=0), WHITE, tol=1)
    assert close(pad[32, 25], RED) and close(pad[32, 38], BLUE)


@pytest.mark.parametrize("filter_name", ["lanczos", "bicubic", "box"])
def test_every_filter_resizes(filter_name):
    arr = decoded(encode(gradient((128, 96)), "PNG"), filter=filter_name, size=32)
    assert arr.shape == (32, 32, 3)
    assert arr[16, 0, 0] < 64 and arr[16, -1, 0] > 192  # red ramps up left to right


@pytest.mark.parametrize(("orientation", "left", "right"), [
    (None, RED, RED),  # stored as is: red on top, so left and right of the middle row are red
    (6, BLUE, RED),  # rotate 90 deg clockwise for display: the top goes to the right
    (8, RED, BLUE),  # rotate 90 deg counter-clockwise: the top goes to the left
])
def test_exif_orientation_is_applied(orientation, left, right):
    # 64x48 landscape: red top half, blue bottom half.
    arr = np.zeros((48, 64, 3), np.uint8)
    arr[:24], arr[24:] = RED, BLUE
    params: dict[str, object] = {"quality": 95}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        params["exif"] = exif.tobytes()
    out = decoded(encode(Image.fromarray(arr), "JPEG", **params), crop="pad")
    if orientation is None:
        # 64x48 landscape: white bands above and below
        assert close(out[2, 32], WHITE, tol=1) and close(out[61, 32], WHITE, tol=1)
        assert close(out[20, 32], RED) and close(out[44, 32], BLUE)
    else:  # displayed 48x64 portrait: white bands left and right
        assert close(out[32, 2], WHITE, tol=1) and close(out[32, 61], WHITE, tol=1)
        assert close(out[32, 14], left) and close(out[32, 50], right)


def test_broken_exif_is_ignored():
    img = gradient()
    junk = b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + bytes(range(256))
    for fmt in ("JPEG", "PNG", "WEBP"):
        assert decoded(encode(img, fmt, exif=junk)).shape == (64, 64, 3)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "MPO", "TIFF"])
def test_multi_frame_files_give_the_first_frame(fmt):
    frames = [Image.new("RGB", (64, 64), RED), Image.new("RGB", (64, 64), BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
    with Image.open(io.BytesIO(data)) as img:
        assert getattr(img, "n_frames", 1) == 2
    assert close(decoded(data)[32, 32], RED)


def test_jpeg_draft_is_used_and_close_to_a_full_decode(monkeypatch):
    y, x = np.mgrid[0:768, 0:1024]
    arr = np.stack([x * 255 // 1023, y * 255 // 767, (x // 8 + y // 8) % 2 * 60 + 90], -1)
    jpeg = encode(Image.fromarray(arr.astype(np.uint8)), "JPEG", quality=92)
    with Image.open(io.BytesIO(jpeg)) as img:  # the same pixels, without draft
        reference = decoded(encode(img.convert("RGB"), "PNG"))

    calls = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original(self, mode, size)
        calls.append((mode, size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    start = time.perf_counter()
    fast = decoded(jpeg)
    assert time.perf_counter() - start < 1
    assert calls == [("RGB", (128, 128), (256, 192))]  # libjpeg decoded at 1/4 scale
    assert np.abs(fast.astype(int) - reference).mean() < 2.0


def test_too_small_uses_the_header_size_and_min_size():
    data = encode(gradient((40, 40)), "PNG")
    assert decode_bytes(data, DecodeOptions())[1] is None  # min side 64 // 2 = 32
    assert decode_bytes(data, DecodeOptions(min_size=41))[1] == "too_small"
    assert decode_bytes(data, DecodeOptions(size=128))[1] == "too_small"
    # A large JPEG decoded by draft at a small scale is judged by its original size.
    big = encode(gradient((800, 800)), "JPEG")
    assert decode_bytes(big, DecodeOptions(min_size=700))[1] is None


# --- decode: bombs and other hostile input ---------------------------------------------------


@pytest.fixture
def load_calls(monkeypatch) -> list[int]:
    """Counts ImageFile.load calls: Pillow allocates and decodes pixels only there."""
    calls: list[int] = []
    original = ImageFile.ImageFile.load

    def spy(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


@pytest.mark.parametrize(("data", "options"), [
    (bomb_png(20000, 20000), {}),  # Pillow's own guard fires inside Image.open
    (bomb_png(20000, 20000), {"max_pixels": 10**12}),  # ... whatever our limit is
    (bomb_png(9000, 9000), {}),  # under Pillow's guard, over our 64M default
    (encode(gradient((100, 100)), "PNG"), {"max_pixels": 5000}),
], ids=["20000x20000", "20000x20000-high-limit", "9000x9000", "100x100-low-limit"])
def test_bombs_are_rejected_from_the_header(data, options, load_calls):
    start = time.perf_counter()
    arr, reason, detail = decode_bytes(data, DecodeOptions(**options))
    assert time.perf_counter() - start < 1
    assert (arr, reason) == (None, "bomb") and detail
    assert load_calls == []


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty"),
    (b"GIF89a", "corrupt"),  # the right magic, but nothing after it
    (b"\x89PNG\r\n\x1a\n" + bytes(8), "corrupt"),
    (b"RIFF\xff\x00\x00\x00WEBPVP8 ", "truncated"),  # RIFF says 255 bytes follow
    (b"%PDF-1.7\n" + bytes(100), "not_image"),
    (b"8BPS" + bytes(100), "unsupported"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(100), "unsupported"),
    (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "unsupported"),
    (b"P6\n64 64\n255\n" + bytes(64 * 64 * 3), "unsupported"),  # PPM: Pillow reads it, we don't
])
def test_bytes_are_classified_by_content(data, reason):
    arr, got, detail = decode_bytes(data, DecodeOptions())
    assert (arr, got) == (None, reason), detail


@posix_only
def test_decode_file_special_paths(tmp_path):
    opts = DecodeOptions()
    os.symlink("missing.png", tmp_path / "broken")
    os.symlink("self", tmp_path / "self")
    os.mkfifo(tmp_path / "fifo")
    assert decode_file(str(tmp_path), opts)[1] == "unsupported"  # a directory
    assert decode_file(str(tmp_path / "gone.png"), opts)[1] == "unreadable"
    assert decode_file(str(tmp_path / "broken"), opts)[1] == "broken_symlink"
    assert decode_file(str(tmp_path / "self"), opts)[1] == "symlink_loop"
    start = time.perf_counter()
    assert decode_file(tmp_path / "fifo", opts)[1] == "unsupported"  # and it does not block
    assert time.perf_counter() - start < 1


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.png"
    path.write_bytes(encode(gradient(), "PNG"))
    path.chmod(0)
    assert decode_file(str(path), DecodeOptions())[1] == "unreadable"


# --- pixel modes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "value", "out_mode", "expected"), [
    ("1", 1, "RGB", (255, 255, 255)),
    ("L", 128, "RGB", (128, 128, 128)),
    ("LA", (128, 255), "RGBA", (128, 128, 128, 255)),
    ("La", (128, 255), "RGBA", (128, 128, 128, 255)),
    ("PA", (0, 200), "RGBA", (0, 0, 0, 200)),
    ("RGBa", (128, 64, 32, 255), "RGBA", (128, 64, 32, 255)),
    ("RGBX", (1, 2, 3, 0), "RGB", (1, 2, 3)),
    ("CMYK", (0, 0, 0, 127), "RGB", (128, 128, 128)),
    ("YCbCr", (128, 128, 128), "RGB", (128, 128, 128)),
    ("HSV", (0, 0, 128), "RGB", (128, 128, 128)),
    ("LAB", (255, 128, 128), "RGB", (254, 255, 254)),  # white; its "A" band is not alpha
    ("I;16", 32896, "RGB", (128, 128, 128)),  # 16-bit: the top byte
    ("I;16B", 32896, "RGB", (128, 128, 128)),
    ("I", 32896, "RGB", (128, 128, 128)),  # 16-bit data in a 32-bit container
    ("I", 200, "RGB", (200, 200, 200)),  # 8-bit data in a 32-bit container
    ("I", -5, "RGB", (0, 0, 0)),
    ("I", 10**6, "RGB", (255, 255, 255)),
    ("F", 0.5, "RGB", (128, 128, 128)),  # 0..1 floats
    ("F", 200.0, "RGB", (200, 200, 200)),  # 0..255 floats
    ("F", float("nan"), "RGB", (0, 0, 0)),
    ("F", -3.0, "RGB", (0, 0, 0)),
])
def test_every_mode_becomes_8bit_rgb_or_rgba(mode, value, out_mode, expected):
    out = decode_module._to_rgb_or_rgba(Image.new(mode, (4, 4), value))
    assert out.mode == out_mode
    assert close(np.array(out.getpixel((0, 0))), expected, tol=1)


def test_sixteen_bit_png_keeps_its_full_range():
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    arr = decoded(encode(Image.fromarray(ramp), "PNG"), crop="stretch", filter="box")
    assert arr.min() < 5 and arr.max() > 250  # not clipped to white, not all black


# --- small APIs --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "rgb"), [
    ("white", (255, 255, 255)), ("Black", (0, 0, 0)), ("#ff8800", (255, 136, 0)),
    ("#f80", (255, 136, 0)), ("255,128,0", (255, 128, 0)), (" 1, 2 ,3 ", (1, 2, 3)),
    ("rgb(1,2,3)", (1, 2, 3)),
])
def test_parse_color(text, rgb):
    assert parse_color(text) == rgb


@pytest.mark.parametrize("text", ["", "nocolour", "#12345", "1,2", "1,2,3,4", "256,0,0",
                                  "a,b,c", "#ff000080"])
def test_parse_color_rejects_with_a_helpful_message(text):
    with pytest.raises(ValueError, match="colour"):
        parse_color(text)


@pytest.mark.parametrize("bad", [{"size": 16}, {"size": 1024}, {"crop": "fill"},
                                 {"filter": "nearest"}, {"background": (256, 0, 0)},
                                 {"background": (1, 2)}, {"min_size": 0}, {"max_pixels": 0}])
def test_decode_options_are_validated(bad):
    with pytest.raises(ValueError):
        DecodeOptions(**bad)


def test_decode_options_store_background_as_int_tuple():
    opts = DecodeOptions(background=[np.uint8(1), 2, 3])  # type: ignore[arg-type]
    assert opts.background == (1, 2, 3) and hash(opts)
    assert DecodeOptions(size=128).min_side == 64 and DecodeOptions(min_size=5).min_side == 5


def test_pixel_hash():
    arr = decoded(encode(gradient(), "PNG"))
    assert len(pixel_hash(arr)) == 64
    assert pixel_hash(arr) == pixel_hash(arr.copy())
    flipped = arr[:, ::-1]  # a non-contiguous view hashes as its pixels, not its memory
    assert pixel_hash(flipped) == pixel_hash(np.ascontiguousarray(flipped))
    changed = arr.copy()
    changed[0, 0, 0] ^= 1
    assert pixel_hash(changed) != pixel_hash(arr)


# --- fuzzing -----------------------------------------------------------------------------------


def _fuzz_seeds() -> list[bytes]:
    img = gradient((40, 36), seed=3)
    return [encode(img, "PNG"), encode(img, "JPEG"), encode(img, "JPEG", progressive=True),
            encode(img.convert("P"), "GIF"), encode(img, "WEBP"), encode(img, "BMP"),
            encode(img, "TIFF", compression="tiff_deflate"), encode(img.convert("RGBA"), "PNG"),
            encode(img, "GIF", save_all=True, append_images=[img.rotate(90)])]


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_FUZZ_SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


_FUZZ_SEEDS = _fuzz_seeds()
_FUZZ_OPTIONS = DecodeOptions(size=32, min_size=8)  # small and permissive: reach the decoders


@settings(max_examples=200, deadline=timedelta(seconds=2), database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2048), mutated_images()))
def test_decode_bytes_never_raises(data):
    arr, reason, detail = decode_bytes(data, _FUZZ_OPTIONS)
    if arr is None:
        assert reason in REASONS and isinstance(detail, str)
    else:
        assert reason is None and detail == ""
        assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
