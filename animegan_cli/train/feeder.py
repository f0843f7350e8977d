"""Feeds batches of real images to the training step without DataLoader workers.

The packed uint8 dataset goes to the GPU once when it fits in a fraction of free memory, or
to pinned host memory with asynchronous copies when it does not; on the CPU it is read from
the memory map. Each epoch is one permutation of indices, seeded by (seed, epoch) so that a
resumed run draws exactly the batches the uninterrupted run would have drawn. Conversion to
float in [-1, 1] happens on the device, on 1/4 of the bytes a float copy would move.
"""

from __future__ import annotations

import numpy as np
import torch

# Leave most of the GPU to the networks: the dataset may take at most this share of free memory.
GPU_DATASET_SHARE = 0.5


class Feeder:
    def __init__(self, images: np.ndarray, device: torch.device, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        # NHWC on disk viewed as NCHW is channels_last: no copy, no conversion.
        host = torch.from_numpy(images).permute(0, 3, 1, 2)
        self.count = host.shape[0]
        self.device = device
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = self.count // (batch_size * world_size)
        self.placement = "memory map"
        self.data = host
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if host.numel() < free * GPU_DATASET_SHARE:
                self.data = host.contiguous(memory_format=torch.channels_last).to(device)
                self.placement = "GPU memory"
            else:
                self.data = host.contiguous(memory_format=torch.channels_last).pin_memory()
                self.placement = "pinned host memory"
        elif device.type == "mps":
            self.data = host.contiguous(memory_format=torch.channels_last).to(device)
            self.placement = "device memory"

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """This rank's indices for `epoch`: a shard of one permutation shared by all ranks."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.count, generator=gen)
        used = self.steps_per_epoch * self.batch_size * self.world_size
        return perm[:used][self.rank::self.world_size]

    def batch(self, indices: torch.Tensor, step_in_epoch: int) -> torch.Tensor:
        idx = indices[step_in_epoch * self.batch_size:(step_in_epoch + 1) * self.batch_size]
        if self.data.device.type != "cpu":
            batch = self.data[idx.to(self.data.device)]
        else:
            batch = self.data[idx]
            if self.device.type != "cpu":
                batch = batch.pin_memory().to(self.device, non_blocking=True)
        return batch.float().div_(127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)
