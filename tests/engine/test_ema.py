"""The EMA of G, its ramp-up ([ema] rampup: short averages as each phase begins, beta's later)
and its running mean to the end ([ema] mean_from_kimg)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganzoo.cli import main
from ganzoo.engine.checkpoint import list_snapshots
from ganzoo.engine.ema import mean_beta, ramped_beta
from ganzoo.engine.trainer import Trainer
from ganzoo.recipe import load_recipe

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "progan_toyfaces.toml"
PHASE = 0.096  # kimg per stabilize / fade phase: 6 iterations at the recipe's batch 16
# The demo recipe at 16x16 with tiny widths; batch sizes and the stddev group are its own.
TINY = ["run.device=\"cpu\"", "data.resolution=16", "data.size=64", "model.latent_dim=8",
        "model.fmap_base=32", "model.fmap_max=8", f"schedule.stabilize_kimg={PHASE}",
        f"schedule.fade_kimg={PHASE}", "train.kimg=0.48", "eval.metrics=[]"]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ramped_beta_sets_the_half_life():
    assert ramped_beta(0.99, 0.0, 5_000, 16) == 0.99  # no ramp: beta throughout
    assert ramped_beta(0.0, 0.25, 5_000, 16) == 0.0  # no averaging stays none
    beta = ramped_beta(0.9999, 0.25, 8_000, 16)
    # the half-life is rampup x images since the phase began: 2,000 images = 125 steps of 16
    assert beta ** (2_000 / 16) == pytest.approx(0.5)
    assert ramped_beta(0.9999, 0.25, 16_000, 16) > beta  # it lengthens as the phase goes on
    assert ramped_beta(0.99, 0.25, 10**7, 16) == 0.99  # and beta caps it
    assert ramped_beta(0.999, 0.25, 0, 16) == ramped_beta(0.999, 0.25, 16, 16) < 0.1  # no 0 / 0


def test_ramp_restarts_where_the_schedule_s_phases_begin(tmp_path):
    """The ramp restarts at every fade and every stable stage, a pure function of the image
    count (so a resumed run gets the same betas without storing anything)."""
    trainer = Trainer(load_recipe(str(RECIPE), [*TINY, f'run.out_dir="{tmp_path}"']))
    # a fade's first instant (alpha 0) is still the stable stage: it grows at the next image
    assert trainer.phase_starts == [0, 97, 192, 289, 384]


def new_block_lag(tmp_path: Path, rampup: float) -> float:
    """How far G-EMA's 16x16 layers stand from G's, relative to how far G's moved from their init,
    a few iterations into the 16x16 fade."""
    trainer = Trainer(load_recipe(str(RECIPE), [*TINY, f'run.out_dir="{tmp_path}"',
                                                "ema.beta=0.999", f"ema.rampup={rampup}"]))
    new = [name for name, _ in trainer.G.named_parameters()
           if name.startswith(("blocks.1.", "to_rgb.2."))]
    init = {name: p.detach().clone() for name, p in trainer.G.named_parameters() if name in new}
    while trainer.images < trainer.phase_starts[3] + 64:
        trainer.train_iteration(trainer._apply_schedule())
    g = {n: p.detach() for n, p in trainer.G.named_parameters()}
    ema = dict(trainer.ema.model.named_parameters())
    moved = sum((g[n] - init[n]).norm() ** 2 for n in new).sqrt()
    lag = sum((g[n] - ema[n]).norm() ** 2 for n in new).sqrt()
    assert moved > 0
    return float(lag / moved)


def test_rampup_follows_new_layers_that_beta_alone_leaves_at_their_init(tmp_path):
    assert new_block_lag(tmp_path / "plain", 0.0) > 0.9  # 0.999: the average is the init
    assert new_block_lag(tmp_path / "ramped", 0.25) < 0.5  # about a step behind


def test_rampup_is_checked(tmp_path, capsys):
    code = main(["run", str(RECIPE), "--set", f'run.out_dir="{tmp_path}"', "--set", "ema.rampup=-1"])
    assert code == 2
    assert "rampup" in capsys.readouterr().err


@pytest.mark.parametrize("average", [("ema.beta=0.999", "ema.rampup=0.25"), ("ema.mean_from_kimg=0.2",)],
                         ids=["ramped", "running mean"])
def test_the_average_resumes_bit_identically(tmp_path, average):
    """Stopped one iteration into the 16x16 fade (inside the running mean from 0.2 kimg) and
    resumed, G-EMA matches a straight run's bit for bit: the ramp's and the mean's weights follow
    from the image count alone."""
    def run(out: Path, *extra: str) -> int:
        sets = [a for s in [*TINY, f'run.out_dir="{out}"', *average,
                            "train.snapshot_kimg=1", "train.sample_kimg=1", "train.sample_grid=4"]
                for a in ("--set", s)]
        return main(["run", str(RECIPE), *sets, *extra])

    assert run(tmp_path / "straight") == 0
    assert run(tmp_path / "resumed", "--set", "train.kimg=0.32") == 0
    assert run(tmp_path / "resumed", "--resume") == 0
    a, b = (load_file(str(list_snapshots(tmp_path / name / "checkpoints")[-1]))
            for name in ("straight", "resumed"))
    ema = [k for k in a if k.startswith("G_ema/")]
    assert ema and all(torch.equal(a[k], b[k]) for k in ema)


def test_mean_beta_weighs_every_step_equally():
    """Folded in with mean_beta's decays, a sequence of values ends as the plain mean of the
    values and of the EMA's value at the start, counted as 1 / (1 - beta) of them."""
    beta, batch, start_value = 0.9, 8, 5.0
    average, values = start_value, [float(v) for v in range(1, 41)]
    for n, value in enumerate(values, 1):
        decay = mean_beta(beta, n * batch, batch)
        average = decay * average + (1 - decay) * value
    seed = 1 / (1 - beta)  # 10 steps' worth
    assert average == pytest.approx((seed * start_value + sum(values)) / (seed + len(values)))
    assert mean_beta(beta, 0, batch) == mean_beta(beta, -80, batch) == beta  # not yet begun
    assert beta < mean_beta(beta, batch, batch) < mean_beta(beta, 2 * batch, batch)


def test_after_mean_from_kimg_g_ema_is_the_running_mean_of_g(tmp_path):
    """In the trainer: from [ema] mean_from_kimg on, G-EMA is the mean of G's weights after each
    step, seeded with G-EMA at the start (1 / (1 - beta) steps' worth)."""
    start = 0.41  # inside the 16x16 stable stage, between two steps of 16
    trainer = Trainer(load_recipe(str(RECIPE), [*TINY, f'run.out_dir="{tmp_path}"', "ema.beta=0.9",
                                                f"ema.mean_from_kimg={start}"]))
    while trainer.images < start * 1000:  # up to the step that crosses the start
        trainer.train_iteration(trainer._apply_schedule())
    names = [n for n, _ in trainer.G.named_parameters()]
    since = trainer.images - start * 1000  # the crossing step is already in at this weight
    assert 0 < since <= 16
    seed = 1 / (1 - 0.9) + since / 16
    total = {n: p.detach().clone() * seed for n, p in trainer.ema.model.named_parameters()}
    plain = {n: p.detach().clone() for n, p in trainer.ema.model.named_parameters()}
    steps = 0
    while trainer.images < trainer.recipe.train.kimg * 1000:
        trainer.train_iteration(trainer._apply_schedule())
        steps += 1
        for n, p in trainer.G.named_parameters():
            total[n] += p.detach()
            plain[n].lerp_(p.detach(), 0.1)
    assert steps >= 4
    ema = dict(trainer.ema.model.named_parameters())
    for n in names:
        torch.testing.assert_close(ema[n], total[n] / (seed + steps), rtol=1e-4, atol=1e-6)
    # and not what beta alone would have made of the same steps
    assert max(float((ema[n] - plain[n]).abs().max()) for n in names) > 1e-3


def test_mean_from_kimg_is_checked(tmp_path, capsys):
    code = main(["run", str(RECIPE), *(a for s in [*TINY, f'run.out_dir="{tmp_path}"',
                                                    "ema.mean_from_kimg=-1"] for a in ("--set", s))])
    assert code == 2
    err = capsys.readouterr().err
    assert "mean_from_kimg" in err and len(err.strip().splitlines()) == 1
