"""The whole GPU table in one process, without pytest: benchmarks/gpu.sh runs it.

    python benchmarks/gpu_table.py [--out benchmarks/results-gpu.md] [--budget 420] [--quick]

Sections, each case beside its plain reference in the same run, timed with CUDA events after
warm-up (compilation is reported apart, never timed):
1. G's fused op (bias + lrelu + pixelnorm) and plain pixelnorm: eager formula / torch.compile /
   Triton, forward and forward + backward, with the achieved GB/s (minimal traffic: fwd reads x
   and writes y; bwd reads x and dy and writes dx).
2. equalized_conv2d vs nn.Conv2d, forward + backward, at ProGAN's shapes.
3. The ProGAN G+D step (WGAN-GP + drift, EMA) at 4..1024 px with the paper's widths and
   minibatches: the engine eager / compiled, fp32 / bf16, against the plain eager loop; img/s and
   peak memory.
A time budget (default 420 s) skips what would not fit, marked in the table. `--quick` runs
CI-sized shapes on the CPU (what the tests check); with CUDA it is the real table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from steps import (DEMO_WIDTH, PAPER_WIDTH, RESOLUTIONS, make_trainer, paper_batch,  # noqa: E402
                   reference_pixelnorm, step_functions)

from ganzoo_progan import kernels  # noqa: E402
from ganzoo_progan.layers import EqualizedConv2d  # noqa: E402


class Clock:
    def __init__(self, device: torch.device, budget: float):
        self.device, self.deadline = device, time.perf_counter() + budget

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def time(self, fn, *, min_seconds: float = 0.3, min_reps: int = 3) -> float:
        """Seconds per call of fn (warm: call it once before)."""
        self.sync()
        reps, total = 0, 0.0
        while reps < min_reps or total < min_seconds:
            start = time.perf_counter()
            fn()
            self.sync()
            total += time.perf_counter() - start
            reps += 1
            if reps >= 1000:
                break
        return total / reps


def pixelnorm_rows(clock: Clock, shapes, cuda: bool):
    rows = ["| op | shape | impl | fwd ms | fwd GB/s | fwd+bwd ms | fwd+bwd GB/s |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for shape in shapes:
        for op in ("bias+lrelu+pixelnorm", "pixelnorm"):
            x = torch.randn(shape, device=clock.device, requires_grad=True)
            bias = torch.randn(shape[1], device=clock.device, requires_grad=True) if op != "pixelnorm" else None
            slope = 0.2 if op != "pixelnorm" else None
            elem = x.numel() * x.element_size()
            impls = {"reference (eager)": lambda x: reference_pixelnorm(x, bias, slope)}
            if cuda:
                impls["torch.compile"] = torch.compile(lambda x: reference_pixelnorm(x, bias, slope))
                impls["triton"] = lambda x: kernels.fused_pixelnorm(x, bias, 1.0, slope, impl="triton")
                impls["triton, channels_last input"] = lambda x: kernels.fused_pixelnorm(
                    x.contiguous(memory_format=torch.channels_last), bias, 1.0, slope, impl="triton")
            for name, fn in impls.items():
                if clock.left() < 5:
                    rows.append(f"| {op} | {tuple(shape)} | {name} | skipped (time) | | | |")
                    continue
                grad = torch.randn_like(x)

                def fwd():
                    with torch.no_grad():
                        fn(x)

                def fwd_bwd():
                    x.grad = None
                    fn(x).backward(grad)
                fwd(), fwd_bwd()  # compile and warm up
                t_f, t_fb = clock.time(fwd), clock.time(fwd_bwd)
                rows.append(f"| {op} | {tuple(shape)} | {name} | {t_f * 1e3:.3f} | {2 * elem / t_f / 1e9:,.0f} "
                            f"| {t_fb * 1e3:.3f} | {5 * elem / t_fb / 1e9:,.0f} |")
    return rows


def conv_rows(clock: Clock, shapes):
    rows = ["| shape (N, C, H, W), 3x3 | nn.Conv2d ms | equalized_conv2d ms | ratio |", "| --- | ---: | ---: | ---: |"]
    for shape in shapes:
        if clock.left() < 5:
            rows.append(f"| {shape} | skipped (time) | | |")
            continue
        n, c, h, w = shape
        x = torch.randn(shape, device=clock.device, requires_grad=True)
        times = []
        for layer in (nn.Conv2d(c, c, 3, padding=1), EqualizedConv2d(c, c, 3, padding=1)):
            layer = layer.to(clock.device)

            def step():
                x.grad = None
                layer(x).square().mean().backward()
            step()
            times.append(clock.time(step))
        rows.append(f"| {shape} | {times[0] * 1e3:.3f} | {times[1] * 1e3:.3f} | {times[1] / times[0]:.3f} |")
    return rows


def step_rows(clock: Clock, resolutions, *, width, batch_for, modes, tmp: Path):
    """Eager cases at every resolution first, then the compiled ones (the slow part: inductor
    compiles G and D per resolution) spread over the resolutions, until the budget runs out."""
    cuda = clock.device.type == "cuda"
    eager = [m for m in ("reference", *modes) if "compiled" not in m]
    spread = [r for r in (16, 256, 1024, 64, 4, 512, 32, 128, 8) if r in resolutions]
    order = [(r, m) for r in resolutions for m in eager] + [
        (r, m) for m in modes if "compiled" in m for r in spread]
    cells, ref_ips = {}, {}
    for res, mode in order:
        batch = batch_for(res)
        compiled = "compiled" in mode
        if clock.left() < (90 if compiled else 15):
            cells[res, mode] = f"| {res} | {batch} | {mode} | skipped (time) | | | |"
            continue
        precision = "bf16" if "bf16" in mode else "fp32"
        trainer = make_trainer(res, tmp / f"{res}-{mode.replace(' ', '_')}", device=clock.device.type,
                               width=width, batch=batch, compile=compiled, precision=precision,
                               channels_last=False if "NCHW" in mode else True if "channels_last" in mode
                               else "auto")
        engine, reference = step_functions(trainer, res, batch)
        fn = reference if mode == "reference" else engine
        started = time.perf_counter()
        fn(), fn()  # warm-up: allocations, cuDNN autotuning, compilation
        clock.sync()
        warm = time.perf_counter() - started
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        ips = batch / clock.time(fn, min_seconds=1.0)
        peak = f"{torch.cuda.max_memory_allocated() / 2**20:,.0f}" if cuda else ""
        if mode == "reference":
            ref_ips[res] = ips
        ratio = f"{ips / ref_ips[res]:.2f}x" if res in ref_ips else ""
        compile_s = f"{warm:.0f}" if compiled else ""
        cells[res, mode] = f"| {res} | {batch} | {mode} | {ips:,.1f} | {ratio} | {peak} | {compile_s} |"
        print(cells[res, mode], flush=True)
        del trainer, engine, reference, fn
        if cuda:
            torch.cuda.empty_cache()
    rows = ["| px | batch | impl | img/s | vs reference | peak MiB | warm-up (compile) s |",
            "| ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    return rows + [cells[r, m] for r in resolutions for m in ("reference", *modes) if (r, m) in cells]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("results-gpu.md")))
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the whole table")
    parser.add_argument("--quick", action="store_true", help="CI-sized shapes (CPU)")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.quick
    device = torch.device("cuda" if cuda else "cpu")
    clock = Clock(device, args.budget)
    if cuda:
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name()
        pn_shapes = [(64, 512, 32, 32), (16, 128, 128, 128), (4, 16, 1024, 1024)]
        conv_shapes = [(16, 512, 8, 8), (16, 512, 32, 32), (16, 256, 64, 64), (16, 128, 128, 128), (6, 32, 512, 512)]
        resolutions, width, batch_for = RESOLUTIONS, PAPER_WIDTH, paper_batch
        modes = ("eager fp32", "eager fp32 NCHW", "compiled fp32", "eager bf16", "compiled bf16")
    else:
        name = platform.processor() or platform.machine()
        pn_shapes, conv_shapes = [(4, 24, 4, 4), (2, 16, 16, 16)], [(2, 16, 8, 8)]
        resolutions, width, batch_for = (4, 8), DEMO_WIDTH, (lambda r: 8)
        modes = ("eager fp32", "eager fp32 channels_last")
    versions = f"torch {torch.__version__}, triton {getattr(kernels.triton, '__version__', 'absent')}"
    out = [f"# GPU benchmark: {name}", "", f"{versions}, {os.cpu_count()} CPUs, budget {args.budget:.0f} s, "
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GANZOO_CACHE", str(Path(tmp) / "cache"))
        for title, rows in (("## pixelnorm (fp32)", lambda: pixelnorm_rows(clock, pn_shapes, cuda)),
                            ("## equalized_conv2d vs nn.Conv2d (fp32, fwd+bwd)", lambda: conv_rows(clock, conv_shapes)),
                            ("## ProGAN G+D step (WGAN-GP + drift, EMA)", lambda: step_rows(
                                clock, resolutions, width=width, batch_for=batch_for, modes=modes, tmp=Path(tmp)))):
            started = time.perf_counter()
            out += [title, "", *rows(), "", f"({time.perf_counter() - started:.0f} s)", ""]
            print(title, f"done, {clock.left():.0f} s left", flush=True)
    text = "\n".join(out)
    Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
