"""[run] compile / channels_last / threads / malloc_cache: a fast path that changes no result.

- a fade (alpha moving every step) never recompiles: alpha is a tensor; a new stage compiles once
- compiled training steps equal eager ones within float rounding (inductor on CPU), and the
  gradient penalty's critic stays eager (inductor has no double backward)
- the recipe keys are checked and `threads` reaches torch
- malloc_cache keeps a freed block in glibc's heap (a fresh process, read through mallinfo2)
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import attrs
import pytest
import torch
from torch._dynamo.testing import CompileCounter

import ganzoo
from ganzoo.engine import speed
from ganzoo.engine.trainer import Trainer, resolve_precision
from ganzoo.recipe import load_recipe

TINY = ["data.size=64", "model.fmap_base=64", "model.fmap_max=16", "model.latent_dim=16",
        "train.batch_size=8"]


def _tiny_progan(resolution=16):
    return ganzoo.registry("models").get("progan")(resolution=resolution, latent_dim=16,
                                                    fmap_base=64, fmap_max=16)


@pytest.mark.parametrize("side", ["generator", "discriminator"])
def test_a_fade_compiles_once_and_every_new_stage_once(side):
    torch._dynamo.reset()
    model = _tiny_progan()
    net = getattr(model, side)
    counter = CompileCounter()
    compiled = torch.compile(net, backend=counter, dynamic=False)
    z = torch.randn(8, 16) if side == "generator" else None

    def call(res):
        x = z if side == "generator" else torch.randn(8, 3, res, res)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), net(x), rtol=0, atol=0)  # same values

    for alpha in (0.1, 0.35, 0.6, 0.99):  # one fade: only the first call compiles
        net.set_growth(8, alpha)
        call(8)
    assert counter.frame_count == 1
    net.set_growth(8, 1.0)  # the stable phase after it: one more graph
    call(8)
    net.set_growth(16, 0.2)
    call(16)
    net.set_growth(16, 0.7)
    call(16)
    assert counter.frame_count == 3


def _trainer(tmp_path, compile, name, precision="fp32"):
    overrides = [f'run.out_dir="{tmp_path / name}"', 'run.device="cpu"', f"run.compile={compile}",
                 f'run.precision="{precision}"',
                 "data.resolution=8", 'schedule.stabilize_kimg={"4"=0.016}',
                 'schedule.fade_kimg={"8"=0.032}', *TINY]
    return Trainer(load_recipe("recipes/progan_toyfaces.toml", overrides))


def _steps(trainer, n):
    torch.manual_seed(0)
    losses = []
    for _ in range(n):
        state = trainer._apply_schedule()
        losses.append({k: float(v) for k, v in trainer.train_iteration(state).items()})
    return losses, [p.detach().clone() for p in (*trainer.G.parameters(), *trainer.D.parameters())]


def test_compiled_steps_equal_eager_steps_and_the_penalty_critic_stays_eager(tmp_path, monkeypatch):
    """Inductor on CPU through 4x4 and a 4->8 fade (alpha a tensor) with WGAN-GP + drift.
    Tolerance: fused kernels reorder float sums, ~1e-6 relative per step; 1e-4 after 4 steps."""
    torch._dynamo.reset()
    eager = _trainer(tmp_path, "false", "eager")
    compiled = _trainer(tmp_path, "true", "compiled")
    assert eager.D_score is eager.D_train and eager.G_train is eager.G  # off: untouched
    assert isinstance(compiled.G_train, speed.Compiled) and compiled.D_train is compiled.D
    eager_calls = []
    monkeypatch.setattr(compiled, "D_train", _spy(compiled.D_train, eager_calls))
    losses_e, params_e = _steps(eager, 4)  # 2 iterations at 4x4, then 2 into the fade
    losses_c, params_c = _steps(compiled, 4)
    assert compiled.growth[0] == 8 and compiled.growth[1] < 1  # it reached the fade
    assert len(eager_calls) == 4  # the penalty's critic: once per D step, eagerly
    for a, b in zip(losses_e, losses_c):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
    for a, b in zip(params_e, params_c):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    # G compiled once per (stage, grad mode): 4x4 and the fade, with and without grad.
    assert compiled.G_train.compiles == 4 and compiled.G_train.compile_seconds > 0


def test_channels_last_steps_equal_contiguous_ones(tmp_path):
    """channels_last = true (the CUDA default) on CPU: the same steps within float rounding."""
    plain, params = _steps(_trainer(tmp_path, "false", "nchw"), 3)
    trainer = _trainer(tmp_path, "false", "nhwc")
    trainer.recipe = attrs.evolve(trainer.recipe, run=attrs.evolve(trainer.recipe.run, channels_last=True))
    speed.apply(trainer)
    conv = trainer.G.first_conv.conv.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    nhwc, params_nhwc = _steps(trainer, 3)
    for a, b in zip(plain, nhwc):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
    for a, b in zip(params, params_nhwc):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_bf16_steps_track_fp32_through_the_fade_penalty_and_drift(tmp_path):
    """bf16 autocast (CPU here; the same code path on CUDA): the fade's alpha tensor, the
    penalty's double backward and the drift term run, and the losses track fp32's (bf16 keeps
    8 bits of mantissa: 5% on the first steps)."""
    fp32, _ = _steps(_trainer(tmp_path, "false", "fp32"), 4)
    bf16_trainer = _trainer(tmp_path, "false", "bf16", precision="bf16")
    bf16, params = _steps(bf16_trainer, 4)
    assert bf16_trainer.growth[1] < 1  # the last steps were in the fade
    assert all(torch.isfinite(p).all() for p in params)
    for a, b in zip(fp32[:2], bf16[:2]):
        for key in ("D/wasserstein", "D/gradient_penalty", "G/wasserstein"):
            assert b[key] == pytest.approx(a[key], rel=5e-2, abs=5e-2), key
    assert all(set(b) == set(a) for a, b in zip(fp32, bf16))


def _spy(fn, calls):
    def wrapped(*args, **kwargs):
        calls.append(args[0].shape)
        return fn(*args, **kwargs)
    return wrapped


def test_needs_eager_picks_only_penalty_inputs():
    leaf = torch.zeros(2, 3, requires_grad=True)
    assert speed.needs_eager(leaf)
    assert not speed.needs_eager(leaf * 2)  # G's output in a G step: one backward
    assert not speed.needs_eager(torch.zeros(2, 3))  # real / detached fake scores
    with torch.no_grad():
        assert not speed.needs_eager(leaf)


def test_threads_reach_torch(tmp_path):
    before = torch.get_num_threads()
    try:
        _trainer(tmp_path, "false", "threads").recipe  # default 0: torch's own choice kept
        assert torch.get_num_threads() == before
        speed.set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# A fresh process (the setting is process-wide): a 24 MiB block, above glibc's default mmap
# threshold, allocated and freed; mallinfo2's hblkhd counts mmapped bytes, fordblks the heap's free ones.
_HEAP_PROBE = """
import ctypes, sys, torch
from ganzoo.engine import speed
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                 "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
kept = speed.keep_freed_memory() if sys.argv[1] == "on" else None
x = torch.ones(24 << 20, dtype=torch.uint8)
mapped = libc.mallinfo2().hblkhd
del x
print(kept, mapped >= 24 << 20, libc.mallinfo2().fordblks >= 24 << 20)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc's mallopt")  # the condition keep_freed_memory checks
@pytest.mark.parametrize("mode", ["on", "off"])
def test_malloc_cache_keeps_a_freed_block_in_the_heap(mode):
    out = subprocess.run([sys.executable, "-c", _HEAP_PROBE, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    if mode == "on":  # from the heap, and still there once freed: no fresh page faults next step
        assert out == ["True", "False", "True"]
    else:  # glibc's default, the control: mapped fresh and unmapped on free
        assert out == ["None", "True", "False"]


@pytest.mark.parametrize("value, device, expected", [("auto", "cpu", True), ("auto", "cuda", False),
                                                     (False, "cpu", False), (True, "cuda", True)])
def test_malloc_cache_auto_means_cpu_runs(tmp_path, monkeypatch, value, device, expected):
    calls = []
    monkeypatch.setattr(speed, "keep_freed_memory", lambda: calls.append(1))
    trainer = _trainer(tmp_path, "false", "malloc")
    run = attrs.evolve(trainer.recipe.run, malloc_cache=value)
    monkeypatch.setattr(trainer, "recipe", attrs.evolve(trainer.recipe, run=run))
    monkeypatch.setattr(trainer, "device", torch.device(device))
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32  # what apply sets for CUDA
    calls.clear()  # the trainer applied its own recipe's (CPU, "auto") when built
    try:
        speed.apply(trainer)
    finally:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved
    assert bool(calls) == expected


@pytest.mark.parametrize("override, key", [("run.compile=\"yes\"", "compile"),
                                           ("run.channels_last=2", "channels_last"),
                                           ("run.malloc_cache=\"on\"", "malloc_cache"),
                                           ("run.threads=-1", "threads")])
def test_bad_speed_keys_are_user_errors(override, key):
    with pytest.raises(ganzoo.UserError, match=key):
        load_recipe("recipes/progan_toyfaces.toml", [override])


def test_auto_means_cuda_only():
    assert speed.enabled("auto", torch.device("cuda")) and not speed.enabled("auto", torch.device("cpu"))
    assert speed.enabled(True, torch.device("cpu")) and not speed.enabled(False, torch.device("cuda"))


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_where_the_cpu_has_it(tmp_path, monkeypatch, native, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"  # an explicit choice stands
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    trainer = _trainer(tmp_path, "false", f"auto-{native}", precision="auto")
    assert trainer.precision == expected
    assert isinstance(trainer.autocast, torch.autocast) == (expected == "bf16")


def test_the_gpu_table_runs_in_ci_size(tmp_path):
    """benchmarks/gpu.sh's table, CI-sized on the CPU: every section written, ratios present."""
    out = tmp_path / "results.md"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_table.py", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1",
                               "GANZOO_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    for section in ("## pixelnorm", "## equalized_conv2d", "## ProGAN G+D step"):
        assert section in text
    assert "| 8 | 8 | eager fp32 |" in text and "x |" in text
