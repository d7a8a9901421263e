"""The full ProGAN G+D training step (WGAN-GP + drift), per resolution, beside a plain loop.

- ganzoo:    `Trainer.train_iteration`, i.e. what `ganzoo run` does per step: real batch from the
             data stream, D step with the registered wasserstein + gradient_penalty + drift terms
             through LossContext, G step, EMA update.
- reference: the same networks and losses written out by hand in one function, on a random batch
             already on the device (no data loading, no registry, no EMA).
Sizes: CPU runs a narrow ProGAN (fmap_base 1024, fmap_max 128, batch 16) up to 64px; with
GANZOO_BENCH_DEVICE=cuda the paper's widths (fmap_base 8192, fmap_max 512, latent 512) with the
paper's minibatch (16, then 14 / 6 / 3 at 256 / 512 / 1024) up to GANZOO_BENCH_MAX_RES (1024).
img/s for each case is in extra_info; benchmarks/report.py turns the JSON into a table.
"""

from __future__ import annotations

import os

import attrs
import pytest
import torch

from ganzoo.engine.trainer import Trainer
from ganzoo.recipe import ScheduleConfig, load_recipe

DEVICE = torch.device(os.environ.get("GANZOO_BENCH_DEVICE", "cpu"))
CUDA = DEVICE.type == "cuda"
MAX_RES = int(os.environ.get("GANZOO_BENCH_MAX_RES", "1024" if CUDA else "64"))
RESOLUTIONS = [r for r in (8, 16, 32, 64, 128, 256, 512, 1024) if r <= MAX_RES]
WIDTH = {"fmap_base": 8192, "fmap_max": 512, "latent_dim": 512} if CUDA else {
    "fmap_base": 1024, "fmap_max": 128, "latent_dim": 128}
PAPER_BATCH = {256: 14, 512: 6, 1024: 3}  # appendix A.1; 16 below


def batch_for(res: int) -> int:
    return PAPER_BATCH.get(res, 16) if CUDA else 16


def _sync():
    if CUDA:
        torch.cuda.synchronize()


def _trainer(res: int, tmp_path) -> Trainer:
    """The toyfaces ProGAN recipe at a fixed resolution (no growth) and the benchmark's widths."""
    overrides = [f'run.out_dir="{tmp_path / "run"}"', f'run.device="{DEVICE.type}"',
                 f"data.resolution={res}", "data.size=512", f"train.batch_size={batch_for(res)}",
                 f"model.mbstd_group_size={4 if batch_for(res) % 4 == 0 else batch_for(res)}"]
    overrides += [f"model.{k}={v}" for k, v in WIDTH.items()]
    recipe = load_recipe("recipes/progan_toyfaces.toml", overrides)
    return Trainer(attrs.evolve(recipe, schedule=ScheduleConfig("fixed")))


def _reference_step(G, D, opt_G, opt_D, real, latent_dim):
    n = real.shape[0]
    z = torch.randn(n, latent_dim, device=real.device)
    with torch.no_grad():
        fake = G(z)
    real_scores, fake_scores = D(real).reshape(n), D(fake).reshape(n)
    eps = torch.rand(n, 1, 1, 1, device=real.device)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(D(mixed).sum(), mixed, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    d_loss = fake_scores.mean() - real_scores.mean() + 10 * penalty + 0.001 * (real_scores ** 2).mean()
    opt_D.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_D.step()
    D.requires_grad_(False)
    g_loss = -D(G(torch.randn(n, latent_dim, device=real.device))).mean()
    opt_G.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_G.step()
    D.requires_grad_(True)


@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("impl", ["ganzoo", "reference"])
def test_progan_train_step(benchmark, tmp_path, res, impl):
    benchmark.group = f"progan train step {res}px"
    trainer = _trainer(res, tmp_path)
    state = trainer._apply_schedule()
    if impl == "ganzoo":
        def step():
            trainer.train_iteration(state)
            _sync()
    else:
        G, D = trainer.G, trainer.D
        real = torch.randn(batch_for(res), 3, res, res, device=trainer.device)
        opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
        opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99), eps=1e-8)

        def step():
            _reference_step(G, D, opt_G, opt_D, real, trainer.model.latent_dim)
            _sync()
    step()  # warm-up (allocations, data cache)
    benchmark.pedantic(step, rounds=5 if CUDA else 3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["img_per_s"] = batch_for(res) / benchmark.stats.stats.mean
    benchmark.extra_info["batch"] = batch_for(res)
