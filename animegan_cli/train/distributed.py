"""Process-group set-up for runs launched by `torchrun` (PyTorch DDP).

animegan never launches processes itself: torchrun (single node or multi-node rendezvous)
sets RANK, WORLD_SIZE and LOCAL_RANK and we join its group. NCCL on CUDA, Gloo on CPU.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init(info: DistInfo, device: torch.device) -> None:
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def any_flag(info: DistInfo, flag: bool, device: torch.device) -> bool:
    """True on every rank when any rank raised the flag (stop signals, non-finite losses)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


@torch.no_grad()
def average_buffers(info: DistInfo, *modules: nn.Module) -> None:
    """Average BatchNorm running statistics across ranks.

    DDP runs with broadcast_buffers=False (D is called twice per step), so each rank keeps its
    own statistics; averaging them before sampling and saving makes every rank's model equal.
    """
    if not info.enabled:
        return
    for module in modules:
        for buf in module.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                buf.div_(info.world_size)


def weights_digest(*modules: nn.Module) -> str:
    """SHA-256 of every parameter and buffer, bit for bit."""
    h = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_in_sync(info: DistInfo, *modules: nn.Module) -> str | None:
    """Rank 0 learns whether all ranks ended with the same weights; a mismatch is a bug."""
    if not info.enabled:
        return None
    digests: list[str | None] = [None] * info.world_size
    dist.all_gather_object(digests, weights_digest(*modules))
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks ended with different weights: {digests}")
    return digests[0]
