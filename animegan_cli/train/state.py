"""The full training state <-> a checkpoint file, for exact resume.

What must round-trip for a resumed run to be bit-identical to an uninterrupted one: G, D and
EMA weights and buffers, both Adam states, the noise generator's RNG state, the position
(epoch, step), the fixed sample noise, the GradScalers, and ADA's probability and sums. The
per-epoch data permutation is derived from (seed, epoch), so it needs no state of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from animegan_cli import checkpoint
from animegan_cli.checkpoint import Checkpoint
from animegan_cli.errors import UserError
from animegan_cli.model_config import ModelConfig
from animegan_cli.train.augment import AdaptiveAugment
from animegan_cli.train.ema import EMA

ADAM_KEYS = ("exp_avg", "exp_avg_sq")


@dataclass
class Position:
    epoch: int = 0  # completed epochs
    epoch_step: int = 0  # steps taken inside the current epoch
    step: int = 0  # steps taken in total


@dataclass
class TrainingState:
    """Everything a checkpoint must hold for a resumed run to continue bit for bit."""

    G: nn.Module
    D: nn.Module
    ema: EMA | None
    ada: AdaptiveAugment | None  # its probability p and heuristic sums
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    noise_gen: torch.Generator  # augmentation, flips and the noise of every step
    fixed_noise: torch.Tensor  # the latents of the epoch grids
    pos: Position

    def modules(self) -> dict[str, nn.Module]:
        """The networks under the names their tensors have in a checkpoint."""
        modules: dict[str, nn.Module] = {"G": self.G, "D": self.D}
        if self.ema is not None:
            modules["G_ema"] = self.ema.model
        return modules

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def scalers(self) -> dict[str, torch.amp.GradScaler]:
        return {"d": self.scaler_d, "g": self.scaler_g}

    @property
    def sampling_prefix(self) -> str:
        """The checkpoint name of the generator that samples: the EMA one when there is one."""
        return "G_ema" if self.ema is not None else "G"


def adam(net: nn.Module, lr: float, betas: tuple[float, float],
         device: torch.device) -> torch.optim.Adam:
    """Adam, fused into one kernel per parameter where torch has that kernel (CPU and CUDA).
    At batch 8 on a CPU the unfused update's sqrt/div/add passes are ~16% of a step; fused,
    the step is 4-9% faster (bench/threads.py --profile and --adam, docs/benchmarks.md)."""
    return torch.optim.Adam(net.parameters(), lr=lr, betas=betas,
                            fused=device.type in ("cpu", "cuda"))


def save_full(path: str, model: ModelConfig, state: TrainingState, config_json: str,
              fingerprint: str, extra_meta: dict[str, Any] | None = None) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in state.modules().items():
        tensors.update({f"{prefix}/{k}": v for k, v in module.state_dict().items()})
    lrs = {}
    for prefix, opt in state.optimizers().items():
        lrs[prefix] = opt.param_groups[0]["lr"]
        for i, opt_state in opt.state_dict()["state"].items():
            tensors[f"{prefix}/{i}/step"] = torch.as_tensor(opt_state["step"],
                                                            dtype=torch.float32)
            for key in ADAM_KEYS:
                tensors[f"{prefix}/{i}/{key}"] = opt_state[key]
    tensors["rng/noise"] = state.noise_gen.get_state()
    tensors["rng/torch_cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    tensors["fixed_noise"] = state.fixed_noise
    if state.ada is not None:
        tensors.update({f"ada/{k}": getattr(state.ada, k) for k in AdaptiveAugment.STATE})
    scalers = {name: s.state_dict() for name, s in state.scalers().items() if s.is_enabled()}
    pos = state.pos
    meta = {"epoch": pos.epoch, "epoch_step": pos.epoch_step, "step": pos.step,
            "train_config": config_json, "dataset_fingerprint": fingerprint, "lr": lrs,
            "scalers": scalers, **(extra_meta or {})}
    checkpoint.save(path, "full", model, tensors, meta)


def save_generator(path: str, model: ModelConfig, generator: nn.Module, prefix: str,
                   pos: Position, config_json: str, fingerprint: str) -> None:
    """The sampling generator alone, with the options that trained it (for `info`)."""
    tensors = {f"{prefix}/{k}": v for k, v in generator.state_dict().items()}
    checkpoint.save(path, "generator", model, tensors,
                    {"epoch": pos.epoch, "step": pos.step, "train_config": config_json,
                     "dataset_fingerprint": fingerprint})


def load_full(ckpt: Checkpoint, state: TrainingState) -> None:
    """Restore everything in place: weights, optimizers, RNGs, position, noise, scalers."""
    if ckpt.kind != "full":
        raise UserError(f"{ckpt.path} holds only a generator; resume needs a full checkpoint "
                        "(RUN_DIR/checkpoints/last.safetensors)")
    for prefix, module in state.modules().items():
        ckpt.load_module(prefix, module)
    lrs = ckpt.json("lr", {})
    for prefix, opt in state.optimizers().items():
        _load_adam(ckpt, prefix, opt, lrs.get(prefix) if isinstance(lrs, dict) else None)
    ckpt.check_tensor("fixed_noise", torch.float32, tuple(state.fixed_noise.shape))
    ckpt.check_tensor("rng/noise", torch.uint8, tuple(state.noise_gen.get_state().shape))
    ckpt.check_tensor("rng/torch_cpu", torch.uint8, tuple(torch.get_rng_state().shape))
    values = ckpt.read(["fixed_noise", "rng/noise", "rng/torch_cpu"])
    state.noise_gen.set_state(values["rng/noise"])
    torch.set_rng_state(values["rng/torch_cpu"])
    _restore_cuda_rng(ckpt)
    state.fixed_noise = values["fixed_noise"]
    names = [f"ada/{k}" for k in AdaptiveAugment.STATE]
    if state.ada is not None and all(name in ckpt.tensors for name in names):
        for name in names:  # a run that turns ADA on at resume starts from p = 0
            ckpt.check_tensor(name, torch.float32, ())
        saved = ckpt.read(names, device=state.ada.p.device)
        for key, name in zip(AdaptiveAugment.STATE, names):
            setattr(state.ada, key, saved[name])
    state.pos = Position(*(_int_meta(ckpt, k) for k in ("epoch", "epoch_step", "step")))
    saved_scalers = ckpt.json("scalers", {})
    for name, scaler in state.scalers().items():
        saved = saved_scalers.get(name) if isinstance(saved_scalers, dict) else None
        if scaler.is_enabled() and isinstance(saved, dict):
            scaler.load_state_dict(saved)


def saved_config(ckpt: Checkpoint) -> dict[str, Any]:
    value = ckpt.json("train_config", {})
    if not isinstance(value, dict):
        raise UserError(f"{ckpt.path}: its training config is not a JSON object")
    return value


def _load_adam(ckpt: Checkpoint, prefix: str, opt: torch.optim.Optimizer,
               lr: float | None) -> None:
    params = [p for group in opt.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    names: list[str] = []
    for i, p in enumerate(params):
        if f"{prefix}/{i}/step" not in ckpt.tensors:
            continue  # a parameter that had not been stepped yet
        ckpt.check_tensor(f"{prefix}/{i}/step", torch.float32, ())
        for key in ADAM_KEYS:
            ckpt.check_tensor(f"{prefix}/{i}/{key}", p.dtype, tuple(p.shape))
        names += [f"{prefix}/{i}/step"] + [f"{prefix}/{i}/{k}" for k in ADAM_KEYS]
    values = ckpt.read(names)
    for name, value in values.items():
        _, i, key = name.rsplit("/", 2)
        if key in ADAM_KEYS:  # in the parameter's memory layout (channels_last): the fused
            # kernel walks parameter, gradient and moments as one flat array each, so moments
            # in another layout would be paired with the wrong weights after a resume
            value = torch.empty_like(params[int(i)]).copy_(value)
        state.setdefault(int(i), {})[key] = value
    groups = opt.state_dict()["param_groups"]
    if lr is not None:
        if not isinstance(lr, (int, float)) or not 0 < lr < 1:
            raise UserError(f"{ckpt.path}: its saved learning rate is invalid; start a new run "
                            "with a new --out")
        for group in groups:
            group["lr"] = float(lr)
    opt.load_state_dict({"state": state, "param_groups": groups})


def _restore_cuda_rng(ckpt: Checkpoint) -> None:
    """The global CUDA generators, when this machine has as many GPUs as the one that saved."""
    if not torch.cuda.is_available():
        return
    states = torch.cuda.get_rng_state_all()
    names = [f"rng/cuda/{i}" for i in range(len(states))]
    if not all(name in ckpt.tensors for name in names):
        return
    for name, state in zip(names, states):
        ckpt.check_tensor(name, torch.uint8, tuple(state.shape))
    values = ckpt.read(names)
    torch.cuda.set_rng_state_all([values[name] for name in names])


def _int_meta(ckpt: Checkpoint, key: str) -> int:
    value = ckpt.json(key)
    if type(value) is not int or value < 0:
        raise UserError(f"{ckpt.path}: metadata {key!r} is missing or invalid")
    return value
