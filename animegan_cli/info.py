"""`animegan info`: what a checkpoint is, read from its validated header alone (no tensors)."""

from __future__ import annotations

import math
import os
from typing import Any

from animegan_cli import checkpoint


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    ckpt = checkpoint.open_checkpoint(path)
    prefix = checkpoint.generator_prefix(ckpt)
    # Describe only what would load: every network's tensors must fit the architecture. An
    # export holds one generator, its tensors under their plain names (prefix "").
    networks = tuple(p for p in ("G", "G_ema", "D") if ckpt.has(p)) if prefix else ("",)
    checkpoint.check_networks(ckpt, networks)
    g_params, d_params = _parameters(ckpt, prefix), _parameters(ckpt, "D")
    contents = sorted({name.split("/")[0] for name in ckpt.tensors}) if prefix else ["generator"]
    train_config = ckpt.json("train_config")
    return {
        "path": str(ckpt.path),
        "kind": ckpt.kind,
        "contents": contents,
        "architecture": ckpt.model.arch,
        "image_size": ckpt.model.image_size,
        "nz": ckpt.model.nz,
        "ngf": ckpt.model.ngf,
        "ndf": ckpt.model.ndf,
        "spectral_norm": ckpt.model.spectral_norm,
        "sampling_weights": "EMA generator" if prefix == "G_ema" else "generator",
        "generator_parameters": g_params,
        "discriminator_parameters": d_params if "D" in contents else None,
        "epoch": ckpt.json("epoch"),
        "step": ckpt.json("step"),
        "dataset_fingerprint": ckpt.meta.get("dataset_fingerprint"),
        "created": ckpt.meta.get("created"),
        "tool_version": ckpt.meta.get("tool_version"),
        "file_bytes": ckpt.path.stat().st_size,
        "training": train_config if isinstance(train_config, dict) else None,
    }


def _parameters(ckpt: checkpoint.Checkpoint, prefix: str) -> int:
    """Learned values under `prefix`: BatchNorm statistics and spectral-norm vectors excluded."""
    buffers = ("running_mean", "running_var", "num_batches_tracked", "._u", "._v")
    return sum(math.prod(info.shape) for name, info in ckpt.network(prefix).items()
               if not name.endswith(buffers))
