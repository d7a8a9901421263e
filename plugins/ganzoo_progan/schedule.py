"""The `progressive` growth schedule: ProGAN's level of detail as a pure function of kimg.

Karras et al. 2018, section 2 and appendix A.1; the timeline follows the official
TrainingSchedule (train.py of tkarras/progressive_growing_of_gans):

    stabilize at start_resolution              for stabilize_kimg
    fade in 2 * start_resolution               for fade_kimg
    stabilize at 2 * start_resolution          for stabilize_kimg
    ...
    fade in the target resolution, then stabilize there until the run ends.

With scalar durations this is the official formula: phase_dur = stabilize + fade,
phase_idx = floor(kimg / phase_dur), lod = log2(target / start) - phase_idx
- max(kimg - phase_idx * phase_dur - stabilize, 0) / fade, clamped at 0; the networks run
at target / 2^floor(lod) and, during a fade, alpha = 1 - frac(lod). `stabilize_kimg` and
`fade_kimg` may also be tables keyed by resolution (a fade is keyed by the resolution it
fades in), e.g. to spend less time on cheap low resolutions. `decay_start_kimg` and
`decay_end_kimg` add a linear lr decay to 0 (not in the paper, whose lr is constant; off by
default): the toyfaces demo anneals its last kimg with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import ganzoo
import torch
from ganzoo import GrowthState, LinearDecay, checks

from ganzoo_progan.layers import downscale2d, upscale2d

NAME = "progressive"


def _kimg(name: str, value) -> float:
    return float(checks.at_least(value, 0.0, f"{NAME}: {name}"))


def _lr(name: str, value) -> float:
    return float(checks.positive(value, f"{NAME}: {name}"))


def _batch_size(name: str, value) -> int:
    return checks.count(value, f"{NAME}: {name}")


def _table(name: str, value, check) -> dict[int, object]:
    """A TOML table keyed by resolution ("4", "128" or ints) -> {int: checked value}.

    Keys must be powers of two >= 4; resolutions the run never reaches are ignored, so one
    table serves a recipe at several target resolutions.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ganzoo.UserError(f"{NAME}: {name} must be a table keyed by resolution, "
                               f'e.g. {{"4" = ..., "64" = ...}}, got {checks.show(value)}')
    out = {}
    for key, item in value.items():
        res = int(key) if isinstance(key, str) and key.isdigit() else key
        checks.power_of_two(res, f"{NAME}: every {name} key (a resolution)", minimum=4)
        out[res] = check(f"{name}[{res}]", item)
    return out


def _durations(name: str, value, needed: list[int]) -> dict[int, float]:
    """A phase length given as one number or as a table keyed by resolution -> {res: kimg}."""
    if isinstance(value, Mapping):
        table = _table(name, value, _kimg)
        missing = [r for r in needed if r not in table]
        if missing:
            raise ganzoo.UserError(f"{NAME}: {name} table lacks resolution(s) "
                                   f"{', '.join(map(str, missing))}")
        return table
    kimg = _kimg(name, value)
    return {r: kimg for r in needed}


class ProgressiveSchedule:
    """ProGAN's progressive growing (Karras et al. 2018, section 2): stabilize, fade in, repeat.

    Parameters ([schedule] table): `start_resolution` (4), `stabilize_kimg` (600) and
    `fade_kimg` (600) -- numbers, or tables keyed by resolution -- , `batch_size` and `lr`
    (tables keyed by resolution: the minibatch size and the absolute learning rate of both
    optimizers there; unlisted resolutions use train.batch_size and the optimizers' own lr),
    `reset_optimizers` (true: Adam's moments are cleared whenever a phase starts, as the
    official code does), and `decay_start_kimg` / `decay_end_kimg` (a linear decay of both lrs
    to 0 between them; `LinearDecay`). The engine supplies `resolution` (the target) and `train_batch_size`.

    `phase` numbers the sub-phases: 0 = stabilize at start_resolution, then 2k - 1 = fade in
    the k-th doubling and 2k = stabilize at it; it changes exactly when the resolution or the
    fading/stable status does.
    """

    def __init__(self, *, resolution: int, train_batch_size: int, start_resolution: int = 4,
                 stabilize_kimg: float | dict[str, float] = 600.0,
                 fade_kimg: float | dict[str, float] = 600.0,
                 batch_size: dict[str, int] | None = None, lr: dict[str, float] | None = None,
                 reset_optimizers: bool = True, decay_start_kimg: float | None = None,
                 decay_end_kimg: float | None = None):
        # Defaults: lod_training_kimg = lod_transition_kimg = 600 in the official code; the
        # paper's CelebA-HQ run (appendix A.1) and the official "v1" preset use 800 + 800.
        checks.power_of_two(start_resolution, f"{NAME}: start_resolution", minimum=4)
        target = f"{NAME}: the target resolution ([data] resolution, at least start_resolution)"
        checks.power_of_two(resolution, target, minimum=start_resolution)
        checks.boolean(reset_optimizers, f"{NAME}: reset_optimizers")
        self.target, self.start = resolution, start_resolution
        self.resolutions = [start_resolution << i for i in
                            range(int(math.log2(resolution // start_resolution)) + 1)]
        # A stabilize length is needed below the target, a fade length above the start.
        self.stabilize = _durations("stabilize_kimg", stabilize_kimg, self.resolutions[:-1])
        self.fade = _durations("fade_kimg", fade_kimg, self.resolutions[1:])
        self.default_batch_size = _batch_size("train.batch_size", train_batch_size)
        self.batch_sizes = _table("batch_size", batch_size, _batch_size)
        self.lr = _table("lr", lr, _lr)
        self.reset_optimizers = reset_optimizers
        self.decay = LinearDecay(decay_start_kimg, decay_end_kimg)
        # Where each growth step begins: level k (k >= 1) fades in at fade_start[k] and is
        # stable from stable_start[k]. A zero fade makes the resolution jump.
        self._fade_start, self._stable_start = [0.0], [0.0]
        t = 0.0
        for k, res in enumerate(self.resolutions[1:], start=1):
            t += self.stabilize[self.resolutions[k - 1]]
            self._fade_start.append(t)
            t += self.fade[res]
            self._stable_start.append(t)
        if len(self.resolutions) > 1 and self._stable_start[-1] <= 0.0:
            raise ganzoo.UserError(f"{NAME}: stabilize_kimg and fade_kimg are all zero, so the "
                                   "networks would never grow; give the phases some length")

    def level(self, kimg: float) -> tuple[int, float]:
        """(k, alpha): the networks run at start * 2^k, fading in level k by alpha (1 = stable)."""
        k = 0
        while k + 1 < len(self.resolutions) and (kimg > self._fade_start[k + 1]
                                                 or kimg >= self._stable_start[k + 1]):
            k += 1  # (the second test makes a zero-length fade jump at its start, as officially)
        if kimg >= self._stable_start[k]:
            return k, 1.0
        # During the fade of level k: progress in (0, 1); at exactly its start, level k - 1
        # is still stable (the official lod is then an integer).
        start, end = self._fade_start[k], self._stable_start[k]
        return k, (kimg - start) / (end - start)

    def state(self, kimg: float) -> GrowthState:
        k, alpha = self.level(kimg)
        res = self.resolutions[k]
        # Sub-phase index: 0 stable at start; then fade / stable for each doubling.
        phase = 2 * k - (1 if alpha < 1.0 else 0)
        return GrowthState(resolution=res, alpha=alpha,
                           batch_size=self.batch_sizes.get(res, self.default_batch_size),
                           lr=self.lr.get(res), lr_scale=self.decay.scale(kimg), phase=phase,
                           reset_optimizers=self.reset_optimizers)

    def prepare_real(self, real: torch.Tensor, state: GrowthState) -> torch.Tensor:
        """During a fade, blend the real images toward their half-resolution version.

        x <- lerp(x, nearest_up(avgpool2x2(x)), 1 - alpha), as the official `process_reals`
        ("FadeLOD"): D sees reals that change resolution as smoothly as G's output does
        (section 2, figure 2). Stable phases return the batch unchanged.
        """
        if state.alpha >= 1.0:
            return real
        low = upscale2d(downscale2d(real))
        return real + (low - real) * (1.0 - state.alpha)
