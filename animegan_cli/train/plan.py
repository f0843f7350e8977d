"""What a `train` invocation will do, decided before anything is built or written.

A request (the data, the run folder, the options the user typed) and the run folder's saved
checkpoint, if any, resolve to one `Plan`: the full config, the network config, and the
checkpoint to resume from. Every refusal (a different network, EMA switched, `--resume`
without a checkpoint, an option the loss does not use) happens here, so a refused run leaves
nothing behind. Pure apart from reading the checkpoint's header and the dataset's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animegan_cli import checkpoint
from animegan_cli.checkpoint import Checkpoint
from animegan_cli.errors import UserError
from animegan_cli.model_config import ModelConfig
from animegan_cli.run_dir import RunDir
from animegan_cli.train.config import MODEL_FIELDS, TrainConfig, resolve
from animegan_cli.train.data import prepared_image_size
from animegan_cli.train.losses import check_loss_options
from animegan_cli.train.state import saved_config


@dataclass(frozen=True)
class RunRequest:
    """What the CLI hands the engine: the data source, the run folder and the typed options."""

    data: str | None
    demo: int
    out: Path
    options: dict[str, Any] = field(default_factory=dict)  # only what the user typed
    resume: bool = False
    force: bool = False

    def data_argument(self) -> str:
        """How the data was named on the command line (for resume hints)."""
        return f"--demo {self.demo}" if self.demo else str(self.data)


@dataclass(frozen=True)
class Plan:
    request: RunRequest
    run: RunDir
    config: TrainConfig
    model: ModelConfig
    resume_from: Checkpoint | None  # the run's last checkpoint, when there is one


def make_plan(request: RunRequest) -> Plan:
    """Defaults <- the run's saved options <- the typed options, checked against the run."""
    run = RunDir(request.out)
    if run.root.exists() and not run.root.is_dir():
        raise UserError(f"--out {run.root} is a file; pass a folder for the run")
    resume_from = checkpoint.open_checkpoint(run.last) if run.last.exists() else None
    if resume_from is None and request.resume:
        raise UserError(f"nothing to resume: {run.last} does not exist; start a new run without "
                        "--resume")
    options = dict(request.options)
    saved = saved_config(resume_from) if resume_from is not None else None
    if saved is not None:
        # A width left to the architecture's default is the one the checkpoint holds, whatever
        # that default is now: a run keeps its network across a change of the defaults.
        saved = {**saved, **{k: getattr(resume_from.model, k) for k in ("ngf", "ndf")
                             if saved.get(k) is None}}
    if saved is None and "image_size" not in options:
        size = prepared_image_size(request.data)  # train at the size the dataset was made at
        if size is not None:
            options["image_size"] = size
    config = resolve(options, saved)
    check_loss_options(config)
    model = config.model_config()
    if resume_from is not None:
        _check_resumable(resume_from, run, config, model)
    return Plan(request, run, config, model, resume_from)


def check_dataset(plan: Plan, fingerprint: str) -> None:
    """A resumed run continues on the data it was trained on, unless --force."""
    if plan.resume_from is None or plan.request.force:
        return
    old = plan.resume_from.meta.get("dataset_fingerprint")
    if old != fingerprint:
        raise UserError(f"{plan.run.root} was trained on a different dataset (fingerprint "
                        f"{str(old)[:12]}, now {fingerprint[:12]}); pass --force to continue on "
                        "this data anyway, or use a new --out")


def _check_resumable(ckpt: Checkpoint, run: RunDir, config: TrainConfig,
                     model: ModelConfig) -> None:
    if ckpt.model != model:
        diffs = [f"{k}: run has {getattr(ckpt.model, k)}, asked {getattr(model, k)}"
                 for k in MODEL_FIELDS if getattr(ckpt.model, k) != getattr(model, k)]
        raise UserError(f"{run.root} holds a run with a different network "
                        f"({'; '.join(diffs)}); use a new --out for a new run")
    if ckpt.has("G_ema") != config.ema:
        how, flag = ("with", "--ema") if ckpt.has("G_ema") else ("without", "--no-ema")
        raise UserError(f"{run.root} was trained {how} an EMA generator: resume it with {flag}, "
                        "or use a new --out to change that")
    # Before anything allocates what the file claims.
    checkpoint.check_networks(ckpt, ("G", "D", "G_ema") if config.ema else ("G", "D"))


def typed_learning_rates(plan: Plan) -> dict[str, float]:
    """Learning rates the user typed again on resume: they override the saved (possibly
    rollback-halved) ones; the others keep their saved values."""
    return {name: getattr(plan.config, name) for name in ("lr_g", "lr_d")
            if name in plan.request.options}
