"""Training options: one dataclass, its defaults, and the rules that make a combination valid.

The CLI passes only the options a user actually typed; `resolve` layers them over the defaults
or, when resuming, over the run's saved config. So `animegan train DATA --out RUN` continues a
run with the settings it was started with, and any option typed again overrides them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

from animegan_cli.device import DEVICES, PRECISIONS, Device, Precision
from animegan_cli.errors import UserError
from animegan_cli.metrics import EVAL_METRICS
from animegan_cli.model_config import Arch, ImageSize, ModelConfig

Loss = Literal["hinge", "bce", "lsgan", "rpgan"]
OnNan = Literal["stop", "rollback"]
Recipe = Literal["default", "canonical"]
LOSSES: tuple[str, ...] = get_args(Loss)
ON_NAN: tuple[str, ...] = get_args(OnNan)
# Presets: the settings a --recipe puts under the user's own options. "canonical" is the DCGAN
# paper's recipe as pytorch/examples/dcgan runs it, to reproduce it (or compare with it) in one
# flag; "default" is animegan's defaults as they stand in TrainConfig.
RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    "canonical": {"arch": "dcgan", "ngf": 64, "ndf": 64, "batch_size": 64, "loss": "bce",
                  "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999, "d_steps": 1,
                  "ema": False, "augment": False, "ada_target": 0.0, "r1_gamma": 0.0,
                  "mirror": False, "spectral_norm": False, "label_smoothing": 0.0},
}
# Options that belong to one invocation, not to the run: a resumed run does not inherit them.
SESSION_FIELDS = ("max_steps", "device", "compile", "tensorboard", "inception_weights")
# Options that define the networks: changing them cannot continue a run.
MODEL_FIELDS = ("arch", "image_size", "nz", "ngf", "ndf", "spectral_norm")


@dataclass(frozen=True)
class TrainConfig:
    recipe: Recipe = "default"  # the preset under the other options (RECIPES)
    # networks
    arch: Arch = "dcgan"
    image_size: ImageSize = 64
    nz: int = 100
    ngf: int | None = None  # None: the architecture's default width
    ndf: int | None = None
    spectral_norm: bool = False
    # schedule
    epochs: int = 50
    max_steps: int | None = None  # stop after this many optimizer steps in total
    batch_size: int = 8  # per process (global: times the world size); see bench/quality.py
    # optimisation
    loss: Loss = "hinge"  # bench/quality.py: lower KID and SWD than bce at equal images
    # Twice pytorch/examples' 2e-4: with the narrow networks, lower KID on every set at equal
    # CPU time (bench/quality.py, docs/quality.md).
    lr_g: float = 4e-4
    lr_d: float = 4e-4
    beta1: float = 0.5
    beta2: float = 0.999
    d_steps: int = 1
    label_smoothing: float = 0.0
    ema: bool = True
    ema_half_life: int = 5000  # images; the same averaging at any batch size (ema.py)
    augment: bool = False  # DiffAugment (colour, translation, cutout) on D's inputs
    ada_target: float = 0.0  # adaptive augmentation toward this E[sign D(real)] (0: off)
    # Lazy R1 on D's gradient at real images (0: off). 1 by the equal-CPU pilot (docs/quality.md):
    # varied faces on the demo set where the unregularised D won (loss_g 10-15, one face).
    r1_gamma: float = 1.0
    mirror: bool = False
    # machinery
    seed: int = 0
    device: Device = "auto"
    precision: Precision = "auto"
    compile: bool = False
    checkpoint_every: str = "1"  # "N" epochs or "Nsteps"
    keep: int = 0  # periodic checkpoints kept besides last.safetensors
    on_nan: OnNan = "stop"
    log_every: int = 50  # steps between metrics.jsonl lines
    eval_every: int = 1  # epochs between quality evaluations (0: off)
    eval_metric: str = "swd"  # what best.safetensors is chosen by; fid and kid need Inception
    eval_samples: int = 2048  # samples for FID/KID during training (SWD uses 256)
    inception_weights: str | None = None  # None: $ANIMEGAN_INCEPTION_WEIGHTS or the installed file
    tensorboard: bool = False
    sample_count: int = 64

    def model_config(self) -> ModelConfig:
        try:
            return ModelConfig.for_arch(self.arch, self.image_size, self.nz, self.ngf, self.ndf,
                                        self.spectral_norm)
        except ValueError as exc:
            raise UserError(f"{exc}") from None

    def checkpoint_interval(self) -> tuple[int, str]:
        """(N, 'epochs'|'steps') parsed from checkpoint_every."""
        match = re.fullmatch(r"\s*(\d+)\s*(e|epochs?|s|steps?)?\s*", self.checkpoint_every)
        if not match or int(match.group(1)) < 1:
            raise UserError(f"--checkpoint-every {self.checkpoint_every!r} is not valid; use a "
                            "number of epochs like 1, or of steps like 500steps")
        unit = "steps" if (match.group(2) or "e").startswith("s") else "epochs"
        return int(match.group(1)), unit

    def validate(self) -> TrainConfig:
        self.model_config()
        self.checkpoint_interval()
        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.max_steps is None or self.max_steps >= 1, "--max-steps must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr_g > 0 and self.lr_d > 0, "learning rates must be positive"),
            (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "--beta1/--beta2 must be in [0, 1)"),
            (self.d_steps >= 1, "--d-steps must be at least 1"),
            (0 <= self.seed < 2**32, "--seed must be from 0 to 4294967295"),
            (0 <= self.label_smoothing < 0.5, "--label-smoothing must be in [0, 0.5)"),
            (self.ema_half_life >= 1, "--ema-half-life must be at least 1 image"),
            (0 <= self.ada_target < 1, "--ada-target must be in [0, 1) (0: off; the ADA "
                                       "paper uses 0.6)"),
            (self.r1_gamma >= 0, "--r1-gamma must be 0 (off) or more"),
            (not (self.ada_target and self.augment), "--ada-target and --augment both augment "
                                                     "D's inputs; choose one"),
            (self.keep >= 0, "--keep must be 0 or more"),
            (self.log_every >= 1, "--log-every must be at least 1"),
            (self.eval_every >= 0, "--eval-every must be 0 (off) or more"),
            (self.eval_samples >= 2, "--eval-samples must be at least 2"),
            (1 <= self.sample_count <= 1024, "--sample-count must be from 1 to 1024"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        for name, value, allowed in (("--loss", self.loss, LOSSES),
                                     ("--precision", self.precision, PRECISIONS),
                                     ("--device", self.device, DEVICES),
                                     ("--on-nan", self.on_nan, ON_NAN),
                                     ("--recipe", self.recipe, RECIPES),
                                     ("--eval-metric", self.eval_metric, EVAL_METRICS)):
            if value not in allowed:
                raise UserError(f"{name} {value!r} is not one of: {', '.join(allowed)}")
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _type_ok(default: Any, value: Any, key: str) -> bool:
    """A saved value must have its option's type (ints within 64 bits, finite floats)."""
    if value is None:
        return key in ("ngf", "ndf", "max_steps", "inception_weights")
    if isinstance(default, bool) or key in ("ngf", "ndf", "max_steps"):
        expected: type = bool if isinstance(default, bool) else int
    else:
        expected = type(default)
    if expected is float and type(value) is int:
        value = float(value)
    if type(value) is not expected:
        return False
    if expected is int:
        return -(2**63) <= value < 2**63
    if expected is float:
        return math.isfinite(value)
    return expected is bool or len(value) < 100


def resolve(explicit: dict[str, Any], saved: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults <- the recipe's presets <- the resumed run's config <- what the user typed;
    then validate."""
    recipe = explicit.get("recipe") or (saved or {}).get("recipe") or "default"
    if recipe not in RECIPES:
        raise UserError(f"--recipe {str(recipe)[:40]!r} is not one of: {', '.join(RECIPES)}")
    base = replace(TrainConfig(), **RECIPES[recipe])
    known = {f.name for f in fields(TrainConfig)}
    if saved:
        inherited = {k: v for k, v in saved.items() if k in known and k not in SESSION_FIELDS}
        for key, value in inherited.items():  # the checkpoint may be hostile: check each type
            if not _type_ok(getattr(base, key), value, key):
                raise UserError(f"the run's saved option {key!r} has an invalid value; start a "
                                "new run with a new --out")
        base = replace(base, **inherited)
    return replace(base, **{k: v for k, v in explicit.items() if v is not None}).validate()
