"""The full ProGAN G+D training step (WGAN-GP + drift), per resolution, beside a plain loop.

- ganzoo:    `Trainer.train_iteration`, i.e. what `ganzoo run` does per step: real batch from the
             data stream, D step with the registered wasserstein + gradient_penalty + drift terms
             through LossContext, G step, EMA update.
- reference: the same networks and losses written out by hand in one function (benchmarks/steps.py)
             on a random batch already on the device (no data loading, no registry, no EMA).
Sizes: CPU runs the demo's widths (recipes/progan_toyfaces.toml: fmap_base 512, fmap_max 128,
latent 128, batch 16) up to GANZOO_BENCH_MAX_RES (32); with GANZOO_BENCH_DEVICE=cuda the paper's
widths and minibatches (16, then 14 / 6 / 3 at 256 / 512 / 1024), eager and compiled, fp32 and
bf16 (the whole GPU table: benchmarks/gpu.sh). img/s for each case is in extra_info.
"""

from __future__ import annotations

import os

import pytest
import torch

from steps import DEMO_WIDTH, PAPER_WIDTH, RESOLUTIONS, make_trainer, paper_batch, step_functions

DEVICE = torch.device(os.environ.get("GANZOO_BENCH_DEVICE", "cpu"))
CUDA = DEVICE.type == "cuda"
MAX_RES = int(os.environ.get("GANZOO_BENCH_MAX_RES", "1024" if CUDA else "32"))
CASES = [r for r in RESOLUTIONS if 8 <= r <= MAX_RES]
MODES = ["eager", "compiled"] if CUDA else ["eager"]
# bf16 autocast: on CPUs with AVX512-BF16 (this VM's EPYC) oneDNN's bf16 convolutions are the
# one CPU lever left once fp32 convolutions run at the core's peak (README, Speed).
PRECISIONS = ["fp32", "bf16"]


def _sync():
    if CUDA:
        torch.cuda.synchronize()


@pytest.mark.parametrize("res", CASES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("impl", ["ganzoo", "reference"])
def test_progan_train_step(benchmark, tmp_path, res, mode, precision, impl):
    if impl == "reference" and (mode != "eager" or precision != "fp32"):
        pytest.skip("the reference is plain eager fp32 torch")
    benchmark.group = f"progan train step {res}px" + ("" if mode == "eager" else f" ({mode})")
    batch = paper_batch(res) if CUDA else 16
    trainer = make_trainer(res, tmp_path / "run", device=DEVICE.type, batch=batch,
                           width=PAPER_WIDTH if CUDA else DEMO_WIDTH, compile=mode == "compiled",
                           precision=precision)
    engine, reference = step_functions(trainer, res, batch)
    fn = engine if impl == "ganzoo" else reference

    def step():
        fn()
        _sync()
    step()  # warm-up (allocations, data cache, compilation)
    benchmark.pedantic(step, rounds=5 if CUDA else 3, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["img_per_s"] = batch / benchmark.stats.stats.mean
    benchmark.extra_info["batch"] = batch
