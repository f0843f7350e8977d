"""Where the training state is kept, and how it comes back.

- `last.safetensors`: the full state, at every save (epoch ends, --checkpoint-every, stops),
  with the sampling generator (`generator.safetensors`) beside the run;
- periodic copies (`epoch_0005`, `step_0001000`) when --keep N > 0, the N newest kept;
  retention touches nothing else (never `last` or `best`);
- `best.safetensors`: the sampling generator at its best --eval-metric value so far;
- restore: for resume, and after a non-finite loss (--on-nan rollback) to the last good state.

Every file is written atomically (checkpoint.save), so a kill at any moment leaves the
previous version readable.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from animegan_cli import checkpoint
from animegan_cli.atomic import write_bytes
from animegan_cli.checkpoint import Checkpoint
from animegan_cli.errors import Diverged
from animegan_cli.model_config import ModelConfig
from animegan_cli.run_dir import RunDir
from animegan_cli.train.config import TrainConfig
from animegan_cli.train.state import TrainingState, load_full, save_full, save_generator

MAX_ROLLBACKS = 5  # --on-nan rollback gives up after this many in one invocation


class Checkpointer:
    def __init__(self, run: RunDir, model: ModelConfig, config: TrainConfig,
                 fingerprint: str, is_main: bool) -> None:
        self.run = run
        self.model = model
        self.config = config
        self.fingerprint = fingerprint
        self.is_main = is_main  # only rank 0 writes; every rank tracks what is saved
        self.saved_step = -1  # the step last.safetensors holds
        self.best: float | None = None  # the best value of config.eval_metric so far
        self.rollbacks = 0  # rollbacks after a non-finite loss, in this invocation

    def restore(self, ckpt: Checkpoint, state: TrainingState,
                typed_lrs: dict[str, float]) -> None:
        """Load `ckpt` into `state`; learning rates typed again replace the saved ones (which
        rollbacks may have halved)."""
        load_full(ckpt, state)
        for name, lr in typed_lrs.items():
            opt = state.opt_g if name == "lr_g" else state.opt_d
            for group in opt.param_groups:
                group["lr"] = lr
        self.saved_step = state.pos.step
        best = ckpt.json("best")
        # A run resumed with another --eval-metric starts its best checkpoint afresh.
        if (isinstance(best, dict) and best.get("metric") == self.config.eval_metric
                and isinstance(best.get("value"), (int, float))):
            self.best = float(best["value"])

    def recover(self, state: TrainingState) -> str:
        """After a non-finite loss: with --on-nan rollback, return `state` to the last good
        checkpoint with halved learning rates and say so; otherwise raise Diverged."""
        last = self.run.last
        if self.config.on_nan == "rollback" and last.exists() and self.rollbacks < MAX_ROLLBACKS:
            self.rollbacks += 1
            # Halve the rates in effect (not the checkpoint's), so rollbacks compound.
            halved = {"lr_g": state.opt_g.param_groups[0]["lr"] / 2,
                      "lr_d": state.opt_d.param_groups[0]["lr"] / 2}
            self.restore(checkpoint.open_checkpoint(last), state, halved)
            return (f"[yellow]non-finite loss: rolled back to step {state.pos.step} and halved "
                    f"the learning rates (G {state.opt_g.param_groups[0]['lr']:.2e}, D "
                    f"{state.opt_d.param_groups[0]['lr']:.2e})")
        if self.rollbacks:
            raise Diverged(f"training diverged again after {self.rollbacks} rollbacks with "
                           f"halved learning rates; the last good checkpoint is kept at {last}. "
                           "Lower --lr-d/--lr-g a lot, or try --loss hinge or --spectral-norm")
        kept = (f"the last good checkpoint is kept at {last}" if last.exists()
                else "no checkpoint had been written yet")
        raise Diverged(f"training diverged: the loss became NaN or infinite at step "
                       f"{state.pos.step}; {kept}. Lower --lr-d/--lr-g, or pass --on-nan "
                       "rollback")

    def save(self, state: TrainingState, sampler: nn.Module, *, periodic: bool) -> None:
        """last.safetensors and the sampling generator; at interval points a kept copy."""
        self.saved_step = state.pos.step
        if not self.is_main:
            return
        save_full(str(self.run.last), self.model, state, self.config.to_json(),
                  self.fingerprint, {"best": {"metric": self.config.eval_metric,
                                              "value": self.best}})
        self._save_generator(state, sampler, self.run.generator)
        if periodic and self.config.keep:
            self._keep_periodic(state)

    def offer_best(self, value: float, state: TrainingState, sampler: nn.Module) -> bool:
        """Keep `sampler` as best.safetensors if `value` improves on the best so far."""
        if self.best is not None and value >= self.best:
            return False
        self.best = value
        self._save_generator(state, sampler, self.run.best)
        return True

    def _save_generator(self, state: TrainingState, sampler: nn.Module, path: Path) -> None:
        save_generator(str(path), self.model, sampler, state.sampling_prefix, state.pos,
                       self.config.to_json(), self.fingerprint)

    def _keep_periodic(self, state: TrainingState) -> None:
        _, unit = self.config.checkpoint_interval()
        pos = state.pos
        target = (self.run.periodic_checkpoint(epoch=pos.epoch)
                  if unit == "epochs" and pos.epoch_step == 0
                  else self.run.periodic_checkpoint(step=pos.step))
        if not target.exists():
            write_bytes(target, self.run.last.read_bytes())
        for old in self.run.periodic_checkpoints()[:-self.config.keep]:
            old.unlink(missing_ok=True)
