"""Animations: a run's epoch grids as a GIF (or MP4), labelled with their epoch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from animegan_cli.atomic import atomic_path
from animegan_cli.console import ProgressFn
from animegan_cli.errors import UserError, first_line
from animegan_cli.run_dir import RunDir

if TYPE_CHECKING:
    from animegan_cli.sample import LoadedGenerator

FRAME_PATTERN = re.compile(r"(\d+)")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
FRAME_FORMATS = ["PNG", "JPEG", "WEBP", "BMP"]
MAX_FRAME_PIXELS = 64_000_000


def find_frames(source: Path) -> list[tuple[int, Path]]:
    """Epoch grids in numeric order (epoch_10 after epoch_9), from a run or a plain folder."""
    if not source.exists():
        raise UserError(f"{source} does not exist; pass a run folder (with samples/) or a folder "
                        "of frames")
    run = RunDir(source)
    if run.samples.is_dir():
        folder, frames = run.samples, run.epoch_grids()
    elif source.is_dir():
        folder, frames = source, _numbered_images(source)
    elif source.suffix == ".safetensors":
        raise UserError(f"{source} is a checkpoint: add --interpolate to walk through its latent "
                        "space, or pass its run folder to animate the training progress")
    else:
        raise UserError(f"{source} is not a folder; pass a run folder or a folder of frames")
    if not frames:
        raise UserError(f"no frames in {folder}: expected images named like epoch_0001.png; "
                        "train first with `animegan train`")
    return frames


def _numbered_images(folder: Path) -> list[tuple[int, Path]]:
    """A plain folder may name its frames any way: the last number in a name orders it."""
    frames = []
    for path in folder.iterdir():
        match = FRAME_PATTERN.findall(path.stem)
        if path.suffix.lower() in IMAGE_SUFFIXES and match and not path.name.startswith("."):
            frames.append((int(match[-1]), path))
    return sorted(frames)


def thin(frames: list[tuple[int, Path]], max_frames: int | None) -> list[tuple[int, Path]]:
    """Evenly keep at most max_frames, always the first and the last."""
    if not max_frames or len(frames) <= max_frames:
        return frames
    if max_frames < 2:
        return frames[-1:]
    picks = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
    return [frames[i] for i in sorted(set(picks.tolist()))]


def label_frame(image: Image.Image, text: str) -> Image.Image:
    """Add a strip on top with the label, so the grid itself is not covered."""
    height = max(14, image.height // 24)
    font = _font(height - 4)
    canvas = Image.new("RGB", (image.width, image.height + height), (0, 0, 0))
    canvas.paste(image, (0, height))
    ImageDraw.Draw(canvas).text((4, 1), text, fill=(255, 255, 255), font=font)
    return canvas


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


def write_animation(frames: list[np.ndarray], out: Path, fps: float, loop: int,
                    hold_last: int = 0) -> None:
    """GIF through Pillow, MP4 through imageio's ffmpeg plugin (the optional 'video' extra).

    The last frame is shown hold_last frame-times longer: as one longer GIF frame (GIF writers
    merge identical consecutive frames anyway), as repeated frames in a video.
    """
    if _animation_suffix(out) == ".mp4":
        try:
            import imageio.v3 as iio
            import imageio_ffmpeg  # noqa: F401  (present only with the 'video' extra)
        except ImportError:
            raise UserError("MP4 output needs ffmpeg: pip install 'animegan-cli[video]', or "
                            "write a .gif") from None
        frames = frames + [frames[-1]] * hold_last
        even = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames]  # yuv420p
        with atomic_path(out) as tmp:
            iio.imwrite(tmp, np.stack(even), extension=".mp4", fps=fps, codec="libx264")
        return
    import imageio.v3 as iio

    durations = [1000 / fps] * len(frames)
    durations[-1] *= 1 + hold_last
    with atomic_path(out) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", plugin="pillow",
                    duration=durations, loop=loop)


def make_gif(source: Path, *, out: Path | None = None, fps: float = 2.0, loop: int = 0,
             label: bool = True, max_frames: int | None = None, size: int | None = None,
             hold_last: int = 0) -> tuple[Path, int]:
    """The training progress of a run as an animation; returns (path, frame count).

    Without `out`, it goes to the run's result.gif (the same name inside a folder of frames).
    """
    _check_fps(fps)
    if loop < 0 or hold_last < 0:
        raise UserError("--loop and --hold-last must be 0 or more")
    frames = thin(find_frames(source), max_frames)  # so `source` is a folder from here on
    out = out or RunDir(source).animation
    _animation_suffix(out)  # refused before any frame is read
    images: list[np.ndarray] = []
    first_size: tuple[int, int] | None = None
    for number, path in frames:
        image = _read_frame(path)
        first_size = first_size or image.size
        if image.size != first_size:
            image = image.resize(first_size, Image.Resampling.LANCZOS)
        if size:
            image = _fit(image, size)
        if label:
            image = label_frame(image, f"epoch {number}")
        images.append(np.asarray(image))
    write_animation(images, out, fps, loop, hold_last)
    return out, len(images)


def write_walk(gen: LoadedGenerator, *, walks: list[list[int]], steps: int, nrow: int, out: Path,
               fps: float, loop: int, size: int | None,
               progress: ProgressFn | None = None) -> int:
    """A seamless looping latent walk (or a grid of walks); returns the frame count.
    `progress(done, total)` while the frames are rendered."""
    from animegan_cli.sample import walk_frames

    _check_fps(fps)
    _animation_suffix(out)  # refused before any frame is rendered
    frames = walk_frames(gen, walks, steps, nrow, progress)
    if size:
        frames = [np.asarray(_fit(Image.fromarray(f), size)) for f in frames]
    write_animation(frames, out, fps, loop)
    return len(frames)


def _fit(image: Image.Image, size: int) -> Image.Image:
    if max(image.size) <= size:
        return image
    scale = size / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.LANCZOS)


def _read_frame(path: Path) -> Image.Image:
    """One frame, from a restricted set of decoders, refused from the header when huge."""
    try:
        with Image.open(path, formats=FRAME_FORMATS) as im:
            if im.width * im.height > MAX_FRAME_PIXELS:
                raise UserError(f"frame {path} claims {im.width}x{im.height} pixels; remove it "
                                "or re-run training")
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read frame {path} ({first_line(exc)}); remove it or re-run "
                        "training") from None


def _animation_suffix(out: Path) -> str:
    """".gif" or ".mp4", what `out` is written as; any other ending is refused."""
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise UserError(f"cannot write {out.name}: the output must end in .gif or .mp4")
    return suffix


def _check_fps(fps: float) -> None:
    if not 0 < fps <= 100:
        raise UserError("--fps must be above 0 and at most 100")
