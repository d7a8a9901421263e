"""What the benchmarks time, shared by the pytest-benchmark suites and benchmarks/gpu_table.py
(which runs without pytest). No pytest import here.

- pixelnorm: the plain formula, torch.compile of it, and the fused Triton kernel
- the ProGAN G+D step: the engine's `Trainer.train_iteration` and a plain hand-written loop
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch
import torch.nn.functional as F

RECIPE = Path(__file__).resolve().parents[1] / "ganzoo" / "recipes" / "progan_toyfaces.toml"
DEMO_WIDTH = {"fmap_base": 512, "fmap_max": 128, "latent_dim": 128}  # recipes/progan_toyfaces.toml
PAPER_WIDTH = {"fmap_base": 8192, "fmap_max": 512, "latent_dim": 512}  # appendix A.1, table 2
PAPER_BATCH = {256: 14, 512: 6, 1024: 3}  # appendix A.1 (CelebA-HQ); 16 below 256
RESOLUTIONS = (4, 8, 16, 32, 64, 128, 256, 512, 1024)


def paper_batch(res: int) -> int:
    return PAPER_BATCH.get(res, 16)


def reference_pixelnorm(x, bias=None, slope=None, eps=1e-8):
    """The plain formula, as a user would write it (ProGAN section 4.2)."""
    if bias is not None:
        x = x + bias.reshape(1, -1, 1, 1)
    if slope is not None:
        x = F.leaky_relu(x, slope)
    return x / torch.sqrt(torch.mean(x * x, dim=1, keepdim=True) + eps)


def _switch(value: str | bool) -> str:
    return '"auto"' if value == "auto" else str(value).lower()


def make_trainer(res: int, out_dir: Path, *, device: str, width: dict, batch: int,
                 compile: bool = False, precision: str = "fp32", threads: int = 0,
                 channels_last: str | bool = "auto", malloc_cache: str | bool = "auto"):
    """The toyfaces ProGAN recipe held at one resolution (4x4: the first stage of an 8 px run)."""
    from ganzoo.engine.trainer import Trainer  # noqa: PLC0415 - kernel benchmarks need no recipes
    from ganzoo.recipe import ScheduleConfig, load_recipe  # noqa: PLC0415

    group = 4 if batch % 4 == 0 else batch
    overrides = [f'run.out_dir="{out_dir}"', f'run.device="{device}"', f"run.compile={str(compile).lower()}",
                 f'run.precision="{precision}"', f"run.threads={threads}",
                 "run.channels_last=" + _switch(channels_last), "run.malloc_cache=" + _switch(malloc_cache),
                 f"data.resolution={max(res, 8)}",
                 "data.size=16" if res >= 512 else "data.size=64", f"train.batch_size={batch}",
                 f"model.mbstd_group_size={group}"]
    overrides += [f"model.{k}={v}" for k, v in width.items()]
    if res == 4:
        overrides += ['schedule.stabilize_kimg={"4"=1e6}', 'schedule.batch_size={}']
    recipe = load_recipe(str(RECIPE), overrides)
    if res > 4:
        recipe = attrs.evolve(recipe, schedule=ScheduleConfig("fixed"))
    return Trainer(recipe)


def reference_step(G, D, opt_G, opt_D, real, latent_dim):
    """One WGAN-GP + drift iteration written out by hand (paper-faithful, plain eager torch)."""
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


def step_functions(trainer, res: int, batch: int):
    """(engine step, reference step) on the trainer's networks."""
    state = trainer._apply_schedule()

    def engine():
        trainer.train_iteration(state)

    G, D = trainer.G, trainer.D
    real = torch.randn(batch, 3, res, res, device=trainer.device)
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99), eps=1e-8)

    def reference():
        reference_step(G, D, opt_G, opt_D, real, trainer.model.latent_dim)

    return engine, reference
