"""torchrun / DistributedDataParallel support: rank, world size, and who writes files."""

from __future__ import annotations

import os

import attrs
import torch
import torch.distributed as dist


@attrs.frozen
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files and draws progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init(device_kind: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    info = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device_kind == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return info


def shutdown(info: Dist, clean: bool) -> None:
    """Leave the process group before the interpreter exits: a gloo/nccl group torn down by
    the exit handlers aborts the process ("terminate called without an active exception").
    On a clean finish every rank first waits for the others (rank 0 writes the last files)."""
    if not (info.enabled and dist.is_initialized()):
        return
    if clean:
        dist.barrier()
    dist.destroy_process_group()


def device_for(info: Dist, device: torch.device) -> torch.device:
    return torch.device("cuda", info.local_rank) if device.type == "cuda" else device


def all_reduce_mean(values: torch.Tensor, info: Dist) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(values)
        values /= info.world
    return values


def any_rank(flag: bool, info: Dist) -> bool:
    """True on every rank when it is true on any (so all ranks stop at the same iteration)."""
    if not info.enabled:
        return flag
    value = torch.tensor([float(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
