"""How a run is made fast without changing what it computes: `[run] compile`, `channels_last`,
`threads`, `malloc_cache`, `tf32`, cuDNN's autotuner, and the DistributedDataParallel wrappers.

`apply(trainer)` sets `trainer.G_train` (G as trained), `trainer.D_train` (D run eagerly: the
gradient penalty's double backward goes through it, which TorchInductor cannot differentiate)
and `trainer.D_score` (D for plain scores, compiled when compile is on). All three share the
parameters of `trainer.G` / `trainer.D`. Growing networks keep their stage in Python ints and
bools (a recompile per stage) and their fade alpha in a tensor (no recompile per alpha).
"""

from __future__ import annotations

import ctypes
import platform
import time

import torch
from torch.nn.parallel import DistributedDataParallel

RECOMPILE_LIMIT = 64  # graphs per compiled function: a 4..1024 ProGAN has 9 levels x fade/stable x grad on/off


def enabled(value: str | bool, device: torch.device, auto: bool | None = None) -> bool:
    """A [run] switch: "auto" means on for CUDA, off elsewhere (or `auto` where given)."""
    if value != "auto":
        return bool(value)
    return device.type == "cuda" if auto is None else auto


def set_threads(threads: int) -> None:
    """`[run] threads`: torch's intra-op threads (0 keeps torch's choice). On small shared
    machines one thread can be several times faster than two."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


# glibc's mallopt parameters (malloc.h). 32 MiB is the ceiling of glibc's own dynamic mmap
# threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX), which every version accepts; larger blocks
# still come from mmap. mallopt takes a C int: the trim threshold is INT_MAX (2 GiB).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory() -> bool:
    """`[run] malloc_cache`: glibc's malloc keeps freed blocks of up to 32 MiB in its heap for
    reuse, where by default it maps each large block fresh (mmap) and trims the heap's free top.
    A CPU step frees and reallocates the same activations every step, and each fresh mapping is
    page-faulted in again: the demo's 64 px step (2 MiB tensors) spent ~1-2 ms in each
    elementwise op. The process keeps its peak memory instead. Process-wide and one-way; False
    (and nothing changed) where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL("libc.so.6").mallopt
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def needs_eager(images: torch.Tensor) -> bool:
    """A critic call whose input is a leaf that requires grad is a penalty's (x_hat, an R1
    real): it is differentiated twice, so it must run eagerly."""
    return images.requires_grad and images.grad_fn is None and torch.is_grad_enabled()


class Compiled:
    """torch.compile(module), counting the calls that compiled a new graph and their time."""

    backend = "inductor"  # a class attribute: a debugging backend ("aot_eager") can replace it

    def __init__(self, module, name: str, console=None):
        self.module, self.name, self.console = module, name, console
        self.fn = torch.compile(module, dynamic=False, backend=self.backend)
        self.compiles, self.compile_seconds = 0, 0.0

    def __call__(self, *args, **kwargs):
        counters = torch._dynamo.utils.counters  # loaded by torch.compile above
        before = counters["stats"]["unique_graphs"]
        started = time.perf_counter()
        out = self.fn(*args, **kwargs)
        if counters["stats"]["unique_graphs"] != before:
            seconds = time.perf_counter() - started
            self.compiles += 1
            self.compile_seconds += seconds
            if self.console is not None:
                self.console.print(f"compiled {self.name} (graph {self.compiles}) in {seconds:.1f} s")
        return out


def _wrap_ddp(net):
    # Only a growing network leaves layers unused (those of other stages); a fixed one uses
    # every parameter every step, so DDP need not search the graph for unused ones.
    # static_graph is not set: D runs two or three times per step (scores, penalty), and a
    # growing network's graph changes with every stage.
    return DistributedDataParallel(net, find_unused_parameters=hasattr(net, "set_growth"))


def apply(trainer) -> None:
    """Apply the recipe's [run] speed settings to a Trainer whose G, D and EMA are built and
    on their device; sets G_train, D_train and D_score."""
    run, device = trainer.recipe.run, trainer.device
    set_threads(run.threads)
    if enabled(run.malloc_cache, device, auto=device.type == "cpu"):
        keep_freed_memory()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes per stage: autotune each conv once
        if run.tf32:  # fp32 matmuls and convs on TF32 tensor cores (Ampere and newer)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
    if enabled(run.channels_last, device):
        for net in (trainer.G, trainer.D, trainer.ema.model):
            net.to(memory_format=torch.channels_last)
    trainer.G_train, trainer.D_train = trainer.G, trainer.D
    if trainer.dist.enabled:
        trainer.G_train = _wrap_ddp(trainer.G)
        trainer.D_train = _wrap_ddp(trainer.D)
    trainer.D_score = trainer.D_train
    if enabled(run.compile, device):
        config = torch._dynamo.config  # torch loads dynamo lazily, on this first use
        for name in ("recompile_limit", "cache_size_limit"):  # renamed across torch versions
            if hasattr(config, name):
                setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
        console = trainer.console if trainer.dist.is_main else None
        trainer.G_train = Compiled(trainer.G_train, "G", console)
        trainer.D_score = Compiled(trainer.D_train, "D", console)
