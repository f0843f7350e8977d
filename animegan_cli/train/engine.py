"""The training engine: one for CPU, CUDA, MPS and torchrun (DDP) runs. Read top to bottom:
`train` plans the run, `Trainer.__init__` builds everything, `train_step` is one GAN step,
`fit` is the loop.

What makes it fast is what it does not do: no DataLoader on the hot path (feeder.py), no
per-step `.item()` (statistics accumulate on the device and are read about once a second),
channels_last everywhere, bf16 autocast on CUDA. What makes it safe: every output is written
atomically, Ctrl-C/SIGTERM save a checkpoint first, a non-finite loss never overwrites the
last good checkpoint. Where things live: plan.py (options -> config), data.py (images),
losses.py (objectives), checkpointer.py (saving and restoring), report.py (what is shown).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from animegan_cli.atomic import write_bytes
from animegan_cli.console import stderr_console
from animegan_cli.device import autocast_dtype, resolve_precision, select_device, to_uint8
from animegan_cli.errors import Interrupted, UserError
from animegan_cli.evaluate import training_evaluator
from animegan_cli.images import make_grid, save_image
from animegan_cli.models import build
from animegan_cli.train import distributed as dist
from animegan_cli.train.augment import AdaptiveAugment, diff_augment, flip
from animegan_cli.train.checkpointer import Checkpointer
from animegan_cli.train.collapse import CollapseWatch
from animegan_cli.train.data import load_data
from animegan_cli.train.ema import EMA, recalibrate_batchnorm
from animegan_cli.train.feeder import Feeder
from animegan_cli.train.logs import MetricsLog, plot_losses, summary_writer
from animegan_cli.train.losses import Players, make_loss
from animegan_cli.train.plan import Plan, RunRequest, check_dataset, make_plan, typed_learning_rates
from animegan_cli.train.report import Meter, epoch_line, progress_display, start_line
from animegan_cli.train.signals import StopSignals
from animegan_cli.train.state import Position, TrainingState, adam

RECALIBRATION_SEED = 12345


@dataclass(frozen=True)
class Summary:
    run_dir: Path
    epochs: int
    steps: int
    seconds: float
    images_per_second: float
    last_checkpoint: Path
    resumed_from: int
    steps_per_epoch: int
    is_main: bool = True  # False on the other ranks of a torchrun job: they stay quiet


def train(*, data: str | None, demo: int, out: Path | None, options: dict[str, Any],
          resume: bool = False, force: bool = False) -> Summary:
    """The `animegan train` core. `options` holds only what the user typed (TrainConfig
    names); the rest comes from the defaults or, when `out` holds a run, from that run."""
    info = dist.from_env()
    finished = False
    try:
        device = select_device(options.get("device") or "auto", info.local_rank)
        dist.init(info, device)
        if out is None:  # every rank writes into rank 0's folder: its clock names it
            now = dist.broadcast_int(info, int(time.time()), device)
            out = Path("runs") / time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        plan = make_plan(RunRequest(data, demo, out, options, resume, force))
        try:
            summary = Trainer(plan, device, info).fit()
        except torch.OutOfMemoryError:
            batch = plan.config.batch_size
            raise UserError(f"the GPU ran out of memory at --batch-size {batch}; try "
                            f"--batch-size {max(1, batch // 2)}") from None
        finished = True
        return summary
    finally:
        dist.shutdown(clean=finished)


class Trainer:
    def __init__(self, plan: Plan, device: torch.device, info: dist.DistInfo) -> None:
        cfg = plan.config
        self.plan, self.cfg, self.run, self.device, self.info = plan, cfg, plan.run, device, info
        self.console = stderr_console()
        if cfg.tensorboard and info.is_main:
            summary_writer()  # refused now, before the data is prepared and the run folder made
        self.data = load_data(plan.request.data, plan.request.demo, cfg.image_size, info)
        check_dataset(plan, self.data.fingerprint)
        self.evaluator = training_evaluator(cfg, self.data, device, info.is_main)
        self.precision = resolve_precision(cfg.precision, device)
        self.autocast_dtype = autocast_dtype(self.precision)  # None: fp32, no autocast
        if len(self.data.images) < cfg.batch_size * info.world_size:
            most = len(self.data.images) // info.world_size
            raise UserError(f"--batch-size {cfg.batch_size} is larger than the dataset allows "
                            f"({self.data.description}, {info.world_size} process(es)); "
                            f"use --batch-size {max(1, most)} or less")
        self._create_run_dir()  # only now: a refused run leaves nothing behind

        torch.manual_seed(cfg.seed)
        G, D = (net.to(memory_format=torch.channels_last) for net in build(plan.model, device))
        use_scaler = self.precision == "fp16"
        self.state = TrainingState(
            G=G, D=D, ema=EMA(G, cfg.ema_half_life) if cfg.ema else None,
            ada=AdaptiveAugment(cfg.ada_target, device) if cfg.ada_target else None,
            opt_g=adam(G, cfg.lr_g, (cfg.beta1, cfg.beta2), device),
            opt_d=adam(D, cfg.lr_d, (cfg.beta1, cfg.beta2), device),
            scaler_g=torch.amp.GradScaler(device.type, enabled=use_scaler),
            scaler_d=torch.amp.GradScaler(device.type, enabled=use_scaler),
            # Each rank draws its own noise; the data order is shared and sharded (feeder.py).
            noise_gen=torch.Generator(device=device).manual_seed(cfg.seed * 7919 + info.rank + 1),
            fixed_noise=torch.randn(cfg.sample_count, cfg.nz,
                                    generator=torch.Generator().manual_seed(cfg.seed)),
            pos=Position())
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.feeder = Feeder(self.data.images, device, cfg.batch_size, cfg.seed, info.rank,
                             info.world_size)
        G_run, D_run = (dist.ddp_wrap(G, device), dist.ddp_wrap(D, device)) if info.enabled \
            else (G, D)
        if cfg.compile:
            G_run, D_run = torch.compile(G_run), torch.compile(D_run)
        self.loss = make_loss(Players(G_run, D_run, D, self._augment, self._autocast,
                                      freeze_d_for_g=not info.enabled), cfg)

        self.checkpointer = Checkpointer(self.run, plan.model, cfg, self.data.fingerprint,
                                         info.is_main)
        if plan.resume_from is not None:
            self.checkpointer.restore(plan.resume_from, self.state, typed_learning_rates(plan))
        self.resumed_from = self.state.pos.step
        self.log = (MetricsLog(self.run.metrics, self.run.tensorboard if cfg.tensorboard else None)
                    if info.is_main else None)
        self.collapse = CollapseWatch(self.data.images, cfg.sample_count)
        self.meter = Meter(device, ada=cfg.ada_target > 0)
        self.stop = StopSignals(on_first=self._stopping)
        self.rolled_back = False  # set by a rollback: the loop refetches that epoch's order
        self.recalibrated_at = -1  # step at which the EMA generator's BatchNorm was re-estimated
        if info.is_main:
            self._write_config()

    def _create_run_dir(self) -> None:
        if self.info.is_main:
            self.run.create()
        dist.barrier(self.info)

    def _write_config(self) -> None:
        request = self.plan.request
        record = {"config": asdict(self.cfg), "model": asdict(self.plan.model),
                  "data": request.data, "demo": request.demo, "dataset": self.data.description,
                  "dataset_images": len(self.data.images),
                  "dataset_fingerprint": self.data.fingerprint, "device": str(self.device),
                  "precision": self.precision, "world_size": self.info.world_size,
                  "data_placement": self.feeder.placement}
        write_bytes(self.run.config, json.dumps(record, indent=2).encode())

    def _stopping(self) -> None:
        if self.info.is_main:
            self.console.log("stopping after this step and saving a checkpoint "
                             "(press Ctrl-C again to quit at once)")

    # ---- the step -------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if self.state.ada is not None:
            return self.state.ada(x, self.state.noise_gen)
        return diff_augment(x, self.state.noise_gen) if self.cfg.augment else x

    def train_step(self, real: torch.Tensor) -> torch.Tensor:
        """One D update (or --d-steps of them) and one G update; returns detached statistics."""
        cfg, state = self.cfg, self.state
        if cfg.mirror:
            real = flip(real, state.noise_gen)
        for _ in range(cfg.d_steps):
            z = torch.randn(real.shape[0], cfg.nz, device=self.device, generator=state.noise_gen)
            state.opt_d.zero_grad(set_to_none=True)
            d = self.loss.accumulate_d(real, z, state.scaler_d, state.pos.step)
            state.scaler_d.step(state.opt_d)
            state.scaler_d.update()
            if state.ada is not None:
                state.ada.observe(d.real_logits)
        state.opt_g.zero_grad(set_to_none=True)
        loss_g = self.loss.accumulate_g(d.fake, real, state.scaler_g)
        state.scaler_g.step(state.opt_g)
        state.scaler_g.update()
        if state.ema is not None:
            batch_images = real.shape[0] * self.info.world_size
            state.ema.update(state.G, state.pos.step * batch_images, batch_images)
        stats = [d.loss, loss_g, torch.sigmoid(d.real_logits.float()).mean(),
                 torch.sigmoid(d.fake_logits.float()).mean()]
        if state.ada is not None:
            stats.append(state.ada.p)
            if (state.pos.step + 1) % AdaptiveAugment.INTERVAL == 0:
                dist.all_reduce_sum(self.info, state.ada.signs, state.ada.count)
                state.ada.adjust(AdaptiveAugment.INTERVAL * real.shape[0] * self.info.world_size)
        return torch.stack(stats)

    # ---- the loop -------------------------------------------------------------------------

    def fit(self, on_step: Callable[[], object] | None = None) -> Summary:
        """Train to --epochs/--max-steps or a stop signal. `on_step` runs after every step
        (the benchmarks' clock)."""
        cfg, info, state = self.cfg, self.info, self.state
        spe = self.feeder.steps_per_epoch
        limit = cfg.epochs * spe if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * spe)
        every, unit = cfg.checkpoint_interval()
        start, start_step = time.perf_counter(), state.pos.step
        if state.pos.epoch_step >= spe:  # resumed with a larger batch size: start a new epoch
            state.pos.epoch, state.pos.epoch_step = state.pos.epoch + 1, 0
        if info.is_main:
            self.console.log(start_line(cfg, self.run.root, state.pos.step, limit, self.device,
                                        self.precision, info.world_size, self.data.description,
                                        self.feeder.placement, resuming=self.resumed_from > 0))
        # A bar is for a terminal: in a log file it would only leave a blank line.
        with self.stop.installed(), progress_display(self.console, limit, state.pos, cfg.epochs,
                                               info.is_main and self.console.is_terminal
                                               ) as update:
            while state.pos.step < limit and self.stop.received is None:
                indices = self.feeder.epoch_indices(state.pos.epoch)
                while state.pos.epoch_step < spe and state.pos.step < limit:
                    real = self.feeder.batch(indices, state.pos.epoch_step)
                    self.meter.add(self.train_step(real), real.shape[0] * info.world_size)
                    state.pos.step += 1
                    state.pos.epoch_step += 1
                    if on_step is not None:
                        on_step()
                    log_due = state.pos.step % cfg.log_every == 0 or state.pos.epoch_step == spe
                    # Multi-process runs meet at fixed steps; a single one syncs once a second.
                    sync_due = log_due or (state.pos.step % 10 == 0 if info.enabled
                                           else self.meter.seconds_since_read() >= 1.0)
                    if sync_due:
                        self._read_meter(log_due)
                        update(state.pos, self.meter.shown)
                        if self.rolled_back:  # the position moved: fetch that epoch's order
                            self.rolled_back = False
                            break
                    stop = self.stop.received is not None
                    if info.enabled:  # ranks must agree, and only meet at sync points
                        stop = sync_due and dist.any_flag(info, stop, self.device)
                    if stop:
                        self.stop.received = self.stop.received or signal.SIGTERM
                        break
                    if unit == "steps" and state.pos.step % every == 0:
                        self._checkpoint(periodic=True)
                if state.pos.epoch_step >= spe:
                    state.pos.epoch, state.pos.epoch_step = state.pos.epoch + 1, 0
                    self._end_of_epoch()
                    if unit == "epochs" and state.pos.epoch % every == 0:
                        self._checkpoint(periodic=True)
            self._checkpoint()
        digest = dist.check_in_sync(info, self.device, *state.modules().values())
        if digest and info.is_main:
            self.console.log(f"all {info.world_size} ranks hold identical weights "
                             f"(sha256 {digest[:16]})")
        if self.log:
            self.log.close()
        seconds = time.perf_counter() - start
        done = state.pos.step - start_step
        summary = Summary(self.run.root, state.pos.epoch, state.pos.step, seconds,
                          done * cfg.batch_size * info.world_size / max(seconds, 1e-9),
                          self.run.last, self.resumed_from, spe, info.is_main)
        if self.stop.received is not None:
            raise Interrupted(128 + int(self.stop.received),
                              f"stopped by {signal.Signals(self.stop.received).name} at step "
                              f"{state.pos.step}; checkpoint saved. Resume with: animegan train "
                              f"{self.plan.request.data_argument()} --out {self.run.root}")
        return summary

    def _read_meter(self, log_due: bool) -> None:
        """Read the device statistics (the one host sync), check them, log if due."""
        shown = self.meter.read()
        bad = not all(math.isfinite(shown[k]) for k in ("loss_d", "loss_g"))
        # Every rank reads at the same steps, so all of them stop (or roll back) together.
        if dist.any_flag(self.info, bad, self.device):
            self.console.log(self.checkpointer.recover(self.state))  # or raises Diverged
            self.meter.reset_interval()
            self.rolled_back = True
            return
        if log_due:
            if self.log:
                self.log.write({"step": self.state.pos.step, "epoch": self.state.pos.epoch + 1,
                                **{k: round(v, 5) for k, v in shown.items()},
                                "lr_g": self.state.opt_g.param_groups[0]["lr"],
                                "lr_d": self.state.opt_d.param_groups[0]["lr"],
                                "seconds": round(self.meter.elapsed(), 3)})
            self.meter.reset_interval()

    def _end_of_epoch(self) -> None:
        state = self.state
        dist.average_buffers(self.info, state.G, state.D)
        g = self._sampling_generator()
        with torch.no_grad():
            images = to_uint8(g(state.fixed_noise.to(self.device)))
        eval_due = self.cfg.eval_every and state.pos.epoch % self.cfg.eval_every == 0
        quality = self._evaluate(g) if eval_due and self.info.is_main else None
        state.G.train()
        if not self.info.is_main:
            return
        grid = self.run.epoch_grid(state.pos.epoch)
        grid_image = make_grid(images, nrow=8)
        save_image(grid_image, grid)
        diversity = self.collapse.ratio(images)
        if self.log:
            self.log.image("samples", grid_image, state.pos.step)  # the same grid, in TensorBoard
            self.log.write({"step": state.pos.step, "epoch": state.pos.epoch,
                            "diversity": round(diversity, 4), **(quality or {})})
            plot_losses(self.log.records(), self.run.loss_plot)
        self.console.log(epoch_line(state.pos.epoch, self.cfg.epochs, self.meter.shown, quality,
                                    diversity, grid))
        images_seen = state.pos.step * self.cfg.batch_size * self.info.world_size
        if warning := self.collapse.warning(diversity, images_seen):
            self.console.log(warning)

    def _evaluate(self, g: nn.Module) -> dict[str, Any]:
        """Quality of the sampling generator; kept as best.safetensors when it improved."""
        assert self.evaluator is not None
        values = self.evaluator(g)
        best = self.checkpointer.offer_best(values[self.cfg.eval_metric], self.state, g)
        return {**{k: float(f"{v:.6g}") for k, v in values.items()}, "best": best}

    def _sampling_generator(self) -> nn.Module:
        """The generator to sample and share, in eval mode (callers put G back in train mode)."""
        state = self.state
        if state.ema is None:
            return state.G.eval()
        if self.recalibrated_at != state.pos.step:  # the epoch's grid and checkpoint share one
            recalibrate_batchnorm(state.ema.model, self.cfg.nz, self.device, RECALIBRATION_SEED,
                                  batches=4, batch_size=64)
            self.recalibrated_at = state.pos.step
        return state.ema.model

    def _checkpoint(self, periodic: bool = False) -> None:
        """Save the state unless this step is saved already; never from a diverged step."""
        if self.state.pos.step == self.checkpointer.saved_step:
            return
        if self.meter.pending:
            self._read_meter(log_due=False)
        dist.average_buffers(self.info, self.state.G, self.state.D)
        self.checkpointer.save(self.state, self._sampling_generator(), periodic=periodic)
        self.state.G.train()
        dist.barrier(self.info)

    def _announce(self, limit: int) -> None:
        if not self.info.is_main:
            return
        what = "resuming at" if self.resumed_from else "starting"
        model, processes = self.plan.model, self.info.world_size
        self.console.log(
            f"{what} step {self.state.pos.step}/{limit}: {model.arch} {model.image_size}px on "
            f"{self.device} ({self.precision}"
            f"{f', x{processes} processes' if self.info.enabled else ''}), "
            f"{self.data.description}, batch {self.cfg.batch_size}, data in "
            f"{self.feeder.placement} -> {self.run.root}")
        if self.cfg.compile:
            self.console.log("torch.compile: the first steps include compilation "
                             "(about a minute on CPU, less with a warm cache)")
