"""Process-group set-up for runs launched by `torchrun` (PyTorch DDP).

animegan never launches processes itself: torchrun (single node or multi-node rendezvous)
sets RANK, WORLD_SIZE and LOCAL_RANK and we join its group. NCCL on CUDA, Gloo on CPU.
"""

from __future__ import annotations

import gc
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


def shutdown(clean: bool) -> None:
    """Leave the process group. `clean`: every rank got here normally, so they can meet first.

    Without the meeting, a rank could tear down Gloo while its peer still finishes the last
    collective, and without the collection, Work objects that outlive the group are freed
    during interpreter teardown: either way Gloo's threads abort the process at exit
    ("terminate called without an active exception", about 1 run in 10 on 2 CPU ranks).
    """
    if dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()


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


def all_reduce_sum(info: DistInfo, *tensors: torch.Tensor) -> None:
    """Sum each tensor over the ranks, in place (a no-op in a single process)."""
    if info.enabled:
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)


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
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
                     .tobytes())
    return h.hexdigest()


def check_in_sync(info: DistInfo, device: torch.device, *modules: nn.Module) -> str | None:
    """Every rank learns whether all ranks ended with the same weights; a mismatch is a bug.

    Digests travel as byte tensors: the object collectives would pickle.
    """
    if not info.enabled:
        return None
    digest = weights_digest(*modules)
    mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=device)
    gathered = [torch.empty_like(mine) for _ in range(info.world_size)]
    dist.all_gather(gathered, mine)
    digests = [bytes(t.cpu().tolist()).hex() for t in gathered]
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks ended with different weights: {digests}")
    return digest


def broadcast_int(info: DistInfo, value: int, device: torch.device) -> int:
    """Rank 0's value on every rank."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return int(t.item())


def ddp_wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """DDP without buffer broadcasts in forward: D runs twice before one backward, and a
    broadcast between the two would break that graph (the buffers are averaged instead)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    params = inspect.signature(DDP).parameters
    option = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return DDP(module, device_ids=ids, **{option: False})
