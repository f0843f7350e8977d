"""The training loop: one engine for CPU, CUDA, MPS and torchrun (DDP) runs.

A step is the DCGAN recipe: D on a real batch and on G(z) (detached), then G through the
updated D, then the EMA of G. What makes it fast is what it does not do: no DataLoader on the
hot path (see feeder.py), no per-step `.item()` (losses accumulate on the device and are read
about once a second), channels_last everywhere, bf16 autocast on CUDA. What makes it safe:
every output is written atomically, Ctrl-C/SIGTERM save a checkpoint first, a non-finite loss
never overwrites the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from animegan_cli import checkpoint
from animegan_cli.atomic import write_bytes
from animegan_cli.errors import Diverged, Interrupted, UserError
from animegan_cli.images import make_grid, save_image
from animegan_cli.models import ModelConfig, build
from animegan_cli.train import distributed as dist
from animegan_cli.train.augment import diff_augment, flip
from animegan_cli.train.config import DEVICES, EVAL_METRICS, MODEL_FIELDS, resolve
from animegan_cli.train.ema import EMA, recalibrate_batchnorm
from animegan_cli.train.feeder import Feeder
from animegan_cli.train.logs import MetricsLog, plot_losses
from animegan_cli.train.losses import d_loss, g_loss
from animegan_cli.train.state import Position, load_full, save_full, save_generator, saved_config

LAST = "last.safetensors"
GENERATOR = "generator.safetensors"
RECALIBRATION_SEED = 12345
BEST = "best.safetensors"
SWD_SAMPLES = 256  # images per SWD evaluation during training: seconds on a CPU
MAX_ROLLBACKS = 5  # --on-nan rollback gives up after this many in one invocation


@dataclass
class RunRequest:
    """What the CLI hands the engine: the data source, the run folder and the typed options."""

    data: str | None
    demo: int
    out: Path | None
    explicit: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    force: bool = False


@dataclass(frozen=True)
class Summary:
    run_dir: Path
    epochs: int
    steps: int
    seconds: float
    images_per_second: float
    last_checkpoint: Path
    resumed_from: int
    is_main: bool = True  # False on the other ranks of a torchrun job: they stay quiet


@dataclass(frozen=True)
class TrainData:
    images: np.ndarray  # (N, H, W, 3) uint8
    fingerprint: str
    description: str
    path: Path | None = None  # the prepared dataset's folder; None for the in-memory demo set


def select_device(name: str, local_rank: int = 0) -> torch.device:
    if name not in DEVICES:
        raise UserError(f"--device {name!r} is not one of: {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is available; "
                            "use --device auto or --device cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but MPS is not available; use --device auto")
    return torch.device(name)


def load_data(request: RunRequest, size: int, is_main: bool,
              info: dist.DistInfo) -> TrainData:
    """The demo set, a prepared dataset, or a raw folder prepared into the cache."""
    if request.demo:
        from animegan_cli.data.demo import demo_array

        images = demo_array(request.demo, size)
        digest = hashlib.sha256(images.tobytes()).hexdigest()
        return TrainData(images, digest, f"{request.demo} built-in demo faces")
    from animegan_cli.data.packed import is_dataset, open_dataset

    assert request.data is not None
    path = Path(request.data)
    if not path.exists():
        raise UserError(f"{path} does not exist; pass a folder of images or a prepared dataset "
                        "(or --demo to train on built-in faces)")
    if not is_dataset(path):
        if not path.is_dir():
            raise UserError(f"{path} is not a folder; pass a folder of images or a prepared "
                            "dataset made by `animegan prepare`")
        path = _prepare_into_cache(path, size, is_main, info)
    ds = open_dataset(path)
    if ds.size != size:
        raise UserError(f"{request.data} holds {ds.size} px images but training is at {size} px; "
                        f"pass --image-size {ds.size}, or prepare again with --size {size}")
    return TrainData(ds.images, ds.fingerprint, f"{len(ds)} images from {request.data}",
                     ds.path)


def _prepare_into_cache(src: Path, size: int, is_main: bool, info: dist.DistInfo) -> Path:
    from animegan_cli.data.decode import DecodeOptions
    from animegan_cli.data.prepare import PrepareOptions, prepare
    from animegan_cli.paths import cache_dir

    key = hashlib.sha256(f"{src.resolve()}|{size}".encode()).hexdigest()[:16]
    target = cache_dir() / "datasets" / f"{src.resolve().name}-{size}px-{key}"
    if is_main:
        result = prepare(src, target, PrepareOptions(DecodeOptions(size=size)))
        if not result.up_to_date:
            _console().log(f"prepared {result.kept} images from {src} into {target} "
                           f"({sum(result.skipped.values())} skipped, see its manifest.json)")
    dist.barrier(info)
    return target


class Trainer:
    def __init__(self, request: RunRequest) -> None:
        self.request = request
        self.info = dist.from_env()
        self.console = _console()
        self.stop_signal: int | None = None

    # ---- set-up ---------------------------------------------------------------------------

    def setup(self) -> None:
        req = self.request
        explicit = dict(req.explicit)
        self.device = select_device(explicit.get("device") or "auto", self.info.local_rank)
        dist.init(self.info, self.device)
        self.run_dir = self._run_dir()
        self.ckpt_dir = self.run_dir / "checkpoints"
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise UserError(f"--out {self.run_dir} is a file; pass a folder for the run")
        last = self.ckpt_dir / LAST
        resume_ckpt = None
        if last.exists():
            resume_ckpt = checkpoint.open_checkpoint(last)
        elif req.resume:
            raise UserError(f"nothing to resume: {last} does not exist; start a new run without "
                            "--resume")
        saved = saved_config(resume_ckpt) if resume_ckpt else None
        if saved is None and req.data and "image_size" not in explicit:
            from animegan_cli.data.packed import is_dataset, read_manifest

            if is_dataset(req.data):  # train at the size the dataset was prepared at
                explicit["image_size"] = read_manifest(req.data)["height"]
        self.cfg = resolve(explicit, saved)
        self.model_cfg: ModelConfig = self.cfg.model_config()
        if resume_ckpt is not None and resume_ckpt.model != self.model_cfg:
            diffs = [f"{k}: run has {getattr(resume_ckpt.model, k)}, asked "
                     f"{getattr(self.model_cfg, k)}" for k in MODEL_FIELDS
                     if getattr(resume_ckpt.model, k) != getattr(self.model_cfg, k)]
            raise UserError(f"{self.run_dir} holds a run with a different network "
                            f"({'; '.join(diffs)}); use a new --out for a new run")
        self.data = load_data(req, self.cfg.image_size, self.info.is_main, self.info)
        if resume_ckpt is not None:
            old = resume_ckpt.meta.get("dataset_fingerprint")
            if old != self.data.fingerprint and not req.force:
                raise UserError(f"{self.run_dir} was trained on a different dataset (fingerprint "
                                f"{str(old)[:12]}, now {self.data.fingerprint[:12]}); pass --force "
                                "to continue on this data anyway, or use a new --out")
        if resume_ckpt is not None:
            if resume_ckpt.has("G_ema") != self.cfg.ema:
                how, flag = ("with", "--ema") if resume_ckpt.has("G_ema") else ("without",
                                                                                   "--no-ema")
                raise UserError(f"{self.run_dir} was trained {how} an EMA generator: resume it "
                                f"with {flag}, or use a new --out to change that")
            # Before allocating what the file claims.
            checkpoint.check_networks(resume_ckpt, ("G", "D", "G_ema") if self.cfg.ema
                                      else ("G", "D"))
        inception = self._find_inception()
        self._create_run_dir()  # only now: a refused run leaves nothing behind
        self._build()
        self.evaluator = None
        if self.cfg.eval_every and self.info.is_main:
            from animegan_cli.evaluate import TrainingEvaluator

            self.evaluator = TrainingEvaluator(self.data, self.cfg.nz, self.device, self.cfg.seed,
                                               SWD_SAMPLES, inception, self.cfg.eval_samples)
        self.pos = Position()
        self.resumed_from = 0
        self.saved_step = -1
        self.rolled_back = False
        self.rollbacks = 0
        self.best: float | None = None  # the best value of cfg.eval_metric so far
        self.recalibrated_at = -1  # step at which the EMA generator's BatchNorm was re-estimated
        if resume_ckpt is not None:
            self._restore(resume_ckpt)
        if self.info.is_main:
            self._write_config()
            for folder in (self.run_dir, self.ckpt_dir, self.run_dir / "samples"):
                for stale in folder.glob(".*.partial"):  # left by a kill mid-write
                    stale.unlink(missing_ok=True)

    def _find_inception(self) -> Any:
        """The Inception extractor for FID/KID during training, or None.

        On a GPU it is used whenever it is installed; on a CPU (about 8 images/s) only when
        asked for, by --eval-metric fid|kid or --inception-weights. Every rank checks a
        required network, so all of them stop together when it is missing.
        """
        cfg = self.cfg
        required = cfg.eval_metric != "swd" or cfg.inception_weights is not None
        wanted = required or (self.info.is_main and self.device.type != "cpu")
        if not cfg.eval_every or not wanted:
            return None
        from animegan_cli import metrics

        extractor, why = metrics.find_inception(cfg.inception_weights, self.device)
        if extractor is None and required:
            raise UserError(f"--eval-metric {cfg.eval_metric} needs the Inception network "
                            f"({why}); or use --eval-metric swd")
        return extractor if self.info.is_main else None

    def _run_dir(self) -> Path:
        if self.request.out is not None:
            out = self.request.out
        else:
            # Every rank must write into rank 0's folder: its clock decides the name.
            now = dist.broadcast_int(self.info, int(time.time()), self.device)
            out = Path("runs") / time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        return out

    def _create_run_dir(self) -> None:
        out = self.run_dir
        if self.info.is_main:
            try:
                (out / "checkpoints").mkdir(parents=True, exist_ok=True)
                (out / "samples").mkdir(exist_ok=True)
                probe = out / ".write-test"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                raise UserError(f"cannot write to --out {out} ({exc.strerror}); choose a writable "
                                "folder") from None
        dist.barrier(self.info)

    def _build(self) -> None:
        cfg, device = self.cfg, self.device
        torch.manual_seed(cfg.seed)
        self.G, self.D = build(self.model_cfg, device)
        self.G = self.G.to(memory_format=torch.channels_last)
        self.D = self.D.to(memory_format=torch.channels_last)
        self.ema = EMA(self.G, cfg.ema_beta) if cfg.ema else None
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g,
                                      betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d,
                                      betas=(cfg.beta1, cfg.beta2))
        self.precision = _resolve_precision(cfg.precision, device)
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        use_scaler = self.precision == "fp16"
        self.scaler_d = torch.amp.GradScaler(device.type, enabled=use_scaler)
        self.scaler_g = torch.amp.GradScaler(device.type, enabled=use_scaler)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        # Each rank draws its own noise; the data order is shared and sharded (feeder.py).
        self.noise_gen = torch.Generator(device=device).manual_seed(
            cfg.seed * 7919 + self.info.rank + 1)
        self.fixed_noise = torch.randn(cfg.sample_count, cfg.nz,
                                       generator=torch.Generator().manual_seed(cfg.seed))
        self.feeder = Feeder(self.data.images, device, cfg.batch_size, cfg.seed,
                             self.info.rank, self.info.world_size)
        if self.feeder.steps_per_epoch < 1:
            most = self.feeder.count // self.info.world_size
            raise UserError(f"--batch-size {cfg.batch_size} is larger than the dataset allows "
                            f"({self.data.description}, {self.info.world_size} process(es)); "
                            f"use --batch-size {max(1, most)} or less")
        self.G_step, self.D_step = self.G, self.D
        if self.info.enabled:
            self.G_step = dist.ddp_wrap(self.G, device)
            self.D_step = dist.ddp_wrap(self.D, device)
        if cfg.compile:
            self.G_step = torch.compile(self.G_step)
            self.D_step = torch.compile(self.D_step)

    def _modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {"G": self.G, "D": self.D}
        if self.ema is not None:
            modules["G_ema"] = self.ema.model
        return modules

    def _restore(self, ckpt: checkpoint.Checkpoint) -> None:
        pos, fixed, scalers = load_full(ckpt, self._modules(), {"opt_g": self.opt_g,
                                                                 "opt_d": self.opt_d},
                                        self.noise_gen, tuple(self.fixed_noise.shape))
        self.pos, self.fixed_noise = pos, fixed
        # The saved learning rates (halved by rollbacks) hold unless the user typed new ones.
        for key, opt in (("lr_g", self.opt_g), ("lr_d", self.opt_d)):
            if key in self.request.explicit:
                for group in opt.param_groups:
                    group["lr"] = getattr(self.cfg, key)
        for name, scaler in (("d", self.scaler_d), ("g", self.scaler_g)):
            if scaler.is_enabled() and isinstance(scalers.get(name), dict):
                scaler.load_state_dict(scalers[name])
        self.resumed_from = self.saved_step = pos.step
        best = ckpt.json("best")
        # A run resumed with another --eval-metric starts its best checkpoint afresh.
        if (isinstance(best, dict) and best.get("metric") == self.cfg.eval_metric
                and isinstance(best.get("value"), (int, float))):
            self.best = float(best["value"])

    def _write_config(self) -> None:
        record = {"config": asdict(self.cfg), "model": asdict(self.model_cfg),
                  "data": self.request.data, "demo": self.request.demo,
                  "dataset": self.data.description, "dataset_fingerprint": self.data.fingerprint,
                  "device": str(self.device), "precision": self.precision,
                  "world_size": self.info.world_size, "data_placement": self.feeder.placement}
        write_bytes(self.run_dir / "config.json", json.dumps(record, indent=2).encode())

    # ---- the step -------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.noise_gen) if self.cfg.augment else x

    def train_step(self, real: torch.Tensor) -> torch.Tensor:
        """One D update (or --d-steps of them) and one G update; returns detached statistics."""
        cfg = self.cfg
        b = real.shape[0]
        if cfg.mirror:
            real = flip(real, self.noise_gen)
        for _ in range(cfg.d_steps):
            z = torch.randn(b, cfg.nz, device=self.device, generator=self.noise_gen)
            with self._autocast():
                fake = self.G_step(z)
                real_logits = self.D_step(self._augment(real))
                fake_logits = self.D_step(self._augment(fake.detach()))
                loss_d = d_loss(cfg.loss, real_logits, fake_logits, cfg.label_smoothing)
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(loss_d).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()
        # D's weight gradients are not needed for G's step; skipping them saves a third of
        # D's backward. DDP needs every parameter to produce a gradient, so not there.
        freeze_d = not self.info.enabled
        if freeze_d:
            self.D.requires_grad_(False)
        with self._autocast():
            gen_logits = self.D_step(self._augment(fake))
            loss_g = g_loss(cfg.loss, gen_logits)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss_g).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        if freeze_d:
            self.D.requires_grad_(True)
        if self.ema is not None:
            self.ema.update(self.G, self.pos.step)
        return torch.stack([loss_d.detach(), loss_g.detach(),
                            torch.sigmoid(real_logits.detach().float()).mean(),
                            torch.sigmoid(fake_logits.detach().float()).mean()])

    # ---- the loop -------------------------------------------------------------------------

    def fit(self) -> Summary:
        cfg, info = self.cfg, self.info
        spe = self.feeder.steps_per_epoch
        limit = cfg.epochs * spe if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * spe)
        every, unit = cfg.checkpoint_interval()
        self.log = MetricsLog(self.run_dir, cfg.tensorboard) if info.is_main else None
        self.meter = Meter(self.device)
        start, start_step = time.perf_counter(), self.pos.step
        if self.pos.epoch_step >= spe:  # resumed with a larger batch size: start a new epoch
            self.pos.epoch, self.pos.epoch_step = self.pos.epoch + 1, 0
        self._announce(limit)
        with self._signals(), self._display(limit) as update:
            while self.pos.step < limit and self.stop_signal is None:
                indices = self.feeder.epoch_indices(self.pos.epoch)
                while self.pos.epoch_step < spe and self.pos.step < limit:
                    real = self.feeder.batch(indices, self.pos.epoch_step)
                    self.meter.add(self.train_step(real), real.shape[0] * info.world_size)
                    self.pos.step += 1
                    self.pos.epoch_step += 1
                    log_due = self.pos.step % cfg.log_every == 0 or self.pos.epoch_step == spe
                    # Multi-process runs meet at fixed steps; a single one syncs once a second.
                    sync_due = log_due or (self.pos.step % 10 == 0 if info.enabled
                                           else self.meter.seconds_since_read() >= 1.0)
                    if sync_due:
                        self._read_meter(log_due)
                        update(self.pos, self.meter.shown)
                        if self.rolled_back:  # the position moved: fetch that epoch's order
                            self.rolled_back = False
                            break
                    stop = self.stop_signal is not None
                    if info.enabled:  # ranks must agree, and only meet at sync points
                        stop = sync_due and dist.any_flag(info, stop, self.device)
                    if stop:
                        self.stop_signal = self.stop_signal or signal.SIGTERM
                        break
                    if unit == "steps" and self.pos.step % every == 0:
                        self._checkpoint(periodic=True)
                if self.pos.epoch_step >= spe:
                    self.pos.epoch, self.pos.epoch_step = self.pos.epoch + 1, 0
                    self._end_of_epoch()
                    if unit == "epochs" and self.pos.epoch % every == 0:
                        self._checkpoint(periodic=True)
            self._checkpoint()
        digest = dist.check_in_sync(info, self.device, *self._modules().values())
        if digest and info.is_main:
            self.console.log(f"all {info.world_size} ranks hold identical weights "
                             f"(sha256 {digest[:16]})")
        if self.log:
            self.log.close()
        seconds = time.perf_counter() - start
        done = self.pos.step - start_step
        summary = Summary(self.run_dir, self.pos.epoch, self.pos.step, seconds,
                          done * cfg.batch_size * info.world_size / max(seconds, 1e-9),
                          self.ckpt_dir / LAST, self.resumed_from, info.is_main)
        if self.stop_signal is not None:
            code = 128 + int(self.stop_signal)
            raise Interrupted(code, f"stopped by {signal.Signals(self.stop_signal).name} at step "
                                    f"{self.pos.step}; checkpoint saved. Resume with: animegan "
                                    f"train {self._data_arg()} --out {self.run_dir}")
        return summary

    def _read_meter(self, log_due: bool) -> None:
        """Read the device statistics (the one host sync), check them, log if due."""
        shown = self.meter.read()
        bad = not all(math.isfinite(shown[k]) for k in ("loss_d", "loss_g"))
        # Every rank reads at the same steps, so all of them stop (or roll back) together.
        if dist.any_flag(self.info, bad, self.device):
            self._diverged()
            return
        if log_due:
            if self.log:
                self.log.write({"step": self.pos.step, "epoch": self.pos.epoch + 1,
                                **{k: round(v, 5) for k, v in shown.items()},
                                "lr_g": self.opt_g.param_groups[0]["lr"],
                                "lr_d": self.opt_d.param_groups[0]["lr"],
                                "seconds": round(self.meter.elapsed(), 3)})
            self.meter.reset_interval()

    def _data_arg(self) -> str:
        return f"--demo {self.request.demo}" if self.request.demo else str(self.request.data)

    def _diverged(self) -> None:
        last = self.ckpt_dir / LAST
        if self.cfg.on_nan == "rollback" and last.exists() and self.rollbacks < MAX_ROLLBACKS:
            self.rollbacks += 1
            ckpt = checkpoint.open_checkpoint(last)
            self._restore(ckpt)
            self.meter.reset_interval()
            self.rolled_back = True
            for opt in (self.opt_g, self.opt_d):
                for group in opt.param_groups:
                    group["lr"] /= 2
            self.console.log(f"[yellow]non-finite loss: rolled back to step {self.pos.step} and "
                             f"halved the learning rates (G {self.opt_g.param_groups[0]['lr']:.2e}"
                             f", D {self.opt_d.param_groups[0]['lr']:.2e})")
            return
        if self.rollbacks:
            raise Diverged(f"training diverged again after {self.rollbacks} rollbacks with "
                           f"halved learning rates; the last good checkpoint is kept at {last}. "
                           "Lower --lr-d/--lr-g a lot, or try --loss hinge or --spectral-norm")
        kept = f"the last good checkpoint is kept at {last}" if last.exists() else \
            "no checkpoint had been written yet"
        raise Diverged(f"training diverged: the loss became NaN or infinite at step "
                       f"{self.pos.step}; {kept}. Lower --lr-d/--lr-g, or pass --on-nan rollback")

    def _end_of_epoch(self) -> None:
        dist.average_buffers(self.info, self.G, self.D)
        g = self._sampling_generator()
        with torch.no_grad():
            images = g(self.fixed_noise.to(self.device))
        eval_due = self.cfg.eval_every and self.pos.epoch % self.cfg.eval_every == 0
        quality = self._evaluate(g) if eval_due and self.info.is_main else None
        self.G.train()
        if not self.info.is_main:
            return
        path = self.run_dir / "samples" / f"epoch_{self.pos.epoch:04d}.png"
        save_image(make_grid(to_uint8(images), nrow=8), path)
        if self.log:
            if quality is not None:
                self.log.write({"step": self.pos.step, "epoch": self.pos.epoch, **quality})
            plot_losses(self.log.records(), self.run_dir / "loss.png")
        shown = self.meter.shown
        stats = "  ".join(f"{k} {v:.3f}" for k, v in shown.items() if k != "images_per_s")
        if quality is not None:
            stats += "".join(f"  {k} {quality[k]:.{digits}f}"
                             for k, digits in EVAL_METRICS.items() if k in quality)
            stats += " (best)" if quality["best"] else ""
        self.console.log(f"epoch {self.pos.epoch}/{self.cfg.epochs}  {stats}  "
                         f"{shown.get('images_per_s', 0):.0f} img/s  -> {path}")

    def _evaluate(self, g: nn.Module) -> dict[str, Any]:
        """Quality of the sampling generator; keep it as best.safetensors when it improved."""
        assert self.evaluator is not None
        values = self.evaluator(g)
        value = values[self.cfg.eval_metric]
        best = self.best is None or value < self.best
        if best:
            self.best = value
            self._save_generator(g, self.ckpt_dir / BEST)
        return {**{k: float(f"{v:.6g}") for k, v in values.items()}, "best": best}

    def _sampling_generator(self) -> nn.Module:
        """The generator to sample and share, in eval mode (callers put G back in train mode)."""
        if self.ema is None:
            return self.G.eval()
        if self.recalibrated_at != self.pos.step:  # the epoch's grid and checkpoint share one
            recalibrate_batchnorm(self.ema.model, self.cfg.nz, self.device, RECALIBRATION_SEED,
                                  batches=4, batch_size=64)
            self.recalibrated_at = self.pos.step
        return self.ema.model

    def _checkpoint(self, periodic: bool = False) -> None:
        """Save last.safetensors (and the generator); at interval points also a kept copy."""
        if self.pos.step == self.saved_step:
            return
        if self.meter.pending:
            self._read_meter(log_due=False)  # never save weights from a diverged step
        self.saved_step = self.pos.step
        dist.average_buffers(self.info, self.G, self.D)
        g = self._sampling_generator()
        if self.info.is_main:
            scalers = {name: s.state_dict() for name, s in (("d", self.scaler_d),
                                                            ("g", self.scaler_g)) if s.is_enabled()}
            save_full(str(self.ckpt_dir / LAST), self.model_cfg, self._modules(),
                      {"opt_g": self.opt_g, "opt_d": self.opt_d}, self.noise_gen,
                      self.fixed_noise, self.pos, self.cfg.to_json(), self.data.fingerprint,
                      scalers, {"best": {"metric": self.cfg.eval_metric, "value": self.best}})
            self._save_generator(g, self.run_dir / GENERATOR)
            if periodic and self.cfg.keep:
                self._keep_periodic()
        self.G.train()
        dist.barrier(self.info)

    def _save_generator(self, g: nn.Module, path: Path) -> None:
        """The sampling generator alone, under the name its weights have in a full checkpoint."""
        prefix = "G_ema" if self.ema is not None else "G"
        save_generator(str(path), self.model_cfg, g, prefix, self.pos, self.data.fingerprint)

    def _keep_periodic(self) -> None:
        every, unit = self.cfg.checkpoint_interval()
        name = (f"epoch_{self.pos.epoch:04d}" if unit == "epochs" and self.pos.epoch_step == 0
                else f"step_{self.pos.step:07d}")
        target = self.ckpt_dir / f"{name}.safetensors"
        if not target.exists():
            write_bytes(target, (self.ckpt_dir / LAST).read_bytes())
        periodic = sorted(p for p in self.ckpt_dir.glob("*.safetensors") if p.name != LAST)
        for old in periodic[:-self.cfg.keep]:
            old.unlink(missing_ok=True)

    # ---- presentation and signals ---------------------------------------------------------

    def _announce(self, limit: int) -> None:
        if not self.info.is_main:
            return
        what = "resuming at" if self.resumed_from else "starting"
        self.console.log(
            f"{what} step {self.pos.step}/{limit}: {self.model_cfg.arch} "
            f"{self.model_cfg.image_size}px on {self.device} ({self.precision}"
            f"{', x' + str(self.info.world_size) + ' processes' if self.info.enabled else ''}), "
            f"{self.data.description}, batch {self.cfg.batch_size}, data in "
            f"{self.feeder.placement} -> {self.run_dir}")
        if self.cfg.compile:
            self.console.log("torch.compile: the first steps include compilation "
                             "(about a minute on CPU, less with a warm cache)")

    @contextlib.contextmanager
    def _display(self, limit: int) -> Iterator[Callable[[Position, dict[str, float]], None]]:
        if not self.info.is_main:
            yield lambda pos, shown: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                            TimeRemainingColumn(), console=self.console, transient=True)
        task = progress.add_task("train", total=limit, completed=self.pos.step,
                                 epoch=f"{self.pos.epoch + 1}/{self.cfg.epochs}", stats="")

        def update(pos: Position, shown: dict[str, float]) -> None:
            stats = (f"D {shown['loss_d']:.3f} G {shown['loss_g']:.3f} "
                     f"D(x) {shown['d_real']:.2f} D(G(z)) {shown['d_fake']:.2f} "
                     f"{shown['images_per_s']:.0f} img/s")
            progress.update(task, completed=pos.step, stats=stats,
                            epoch=f"{pos.epoch + 1}/{self.cfg.epochs}")

        with progress:
            yield update

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        def handler(signum: int, frame: object) -> None:
            if self.stop_signal is not None:
                # Second signal: leave now. Every file is written atomically, so nothing breaks.
                raise SystemExit(128 + signum)
            self.stop_signal = signum
            if self.info.is_main:
                self.console.log("stopping after this step and saving a checkpoint "
                                 "(press Ctrl-C again to quit at once)")

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


class Meter:
    """Training statistics summed on the device, read (one sync) only when shown or logged."""

    NAMES = ("loss_d", "loss_g", "d_real", "d_fake")

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(len(self.NAMES), device=device)
        self.count = 0
        self.pending = 0  # steps added since the last read
        self.images = 0
        self.start = self.last_read = time.perf_counter()
        self.shown: dict[str, float] = {}

    def add(self, stats: torch.Tensor, images: int) -> None:
        self.sums += stats
        self.count += 1
        self.pending += 1
        self.images += images

    def seconds_since_read(self) -> float:
        return time.perf_counter() - self.last_read

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def read(self) -> dict[str, float]:
        now = time.perf_counter()
        values = (self.sums / max(self.count, 1)).tolist()
        self.shown = dict(zip(self.NAMES, values))
        self.shown["images_per_s"] = self.images / max(now - self.last_read, 1e-9)
        self.images, self.pending, self.last_read = 0, 0, now
        return self.shown

    def reset_interval(self) -> None:
        self.sums.zero_()
        self.count = 0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW float -> uint8 NHWC, the layout every image writer here takes."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    # bf16 autocast on a CPU with native bf16 (AVX512-BF16, AMX) measured 1.6x faster than fp32
    # (docs/benchmarks.md) but slower without it, so it is offered, not the default.
    if name == "fp16" and device.type == "cpu":
        raise UserError("--precision fp16 is for GPUs; use fp32 (or auto), or bf16 on a CPU "
                        "with native bf16 support")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("this GPU has no bf16 support; use --precision fp16 or fp32")
    return name


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, log_path=False)


def train(request: RunRequest) -> Summary:
    trainer = Trainer(request)
    finished = False
    try:
        trainer.setup()
        summary = trainer.fit()
        finished = True
        return summary
    except torch.OutOfMemoryError:
        batch = trainer.cfg.batch_size if hasattr(trainer, "cfg") else 128
        raise UserError(f"the GPU ran out of memory at --batch-size {batch}; try --batch-size "
                        f"{max(1, batch // 2)}") from None
    finally:
        dist.shutdown(clean=finished)
