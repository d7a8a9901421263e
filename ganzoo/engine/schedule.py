"""Growth schedules: where training stands at a given kimg.

A schedule is registered (hook `ganzoo_register_schedules`) as a class built from its
[schedule] table plus `resolution` (the target) and `train_batch_size`, both
keyword arguments supplied by the engine. Its `state(kimg)` must be a pure function of kimg,
so a resumed run lands in exactly the state it left.
"""

from __future__ import annotations

import attrs

from ganzoo import checks
from ganzoo.errors import UserError


@attrs.frozen
class GrowthState:
    resolution: int  # the networks' current output / input size
    alpha: float = 1.0  # fade-in of the newest layers, 1 when stable
    batch_size: int = 64
    lr: float | None = None  # overrides both optimizers' lr when set
    lr_scale: float = 1.0  # multiplies the lr (e.g. a linear decay)
    phase: int = 0  # changes whenever a new stage begins (optimizers may be reset then)
    reset_optimizers: bool = False  # reset optimizer state when `phase` changes

    @property
    def fading(self) -> bool:
        return self.alpha < 1.0


class LinearDecay:
    """The lr scale of an optional linear decay to 0 between two kimg marks.

    [schedule] keys `decay_start_kimg` and `decay_end_kimg`, both or neither (neither: 1
    throughout). Linear to 0 (StarGAN, section 4; CycleGAN's schedule); any schedule may offer it.
    """

    def __init__(self, start_kimg: float | None, end_kimg: float | None):
        if (start_kimg is None) != (end_kimg is None):
            raise UserError("[schedule] linear decay needs both decay_start_kimg and decay_end_kimg")
        if start_kimg is not None and not (
                checks.at_least(start_kimg, 0, "[schedule] decay_start_kimg")
                < checks.finite(end_kimg, "[schedule] decay_end_kimg")):
            raise UserError(f"[schedule] needs decay_start_kimg < decay_end_kimg, got "
                            f"{start_kimg} and {end_kimg}")
        self.span = (start_kimg, end_kimg) if start_kimg is not None else None

    def scale(self, kimg: float) -> float:
        if self.span is None or kimg <= self.span[0]:
            return 1.0
        start, end = self.span
        return max(0.0, (end - kimg) / (end - start))


class FixedSchedule:
    """No growth: the target resolution and train.batch_size throughout; optional linear lr decay."""

    def __init__(self, *, resolution: int, train_batch_size: int, decay_start_kimg: float | None = None,
                 decay_end_kimg: float | None = None):
        self.decay = LinearDecay(decay_start_kimg, decay_end_kimg)
        self._state = GrowthState(resolution=resolution, batch_size=train_batch_size)

    def state(self, kimg: float) -> GrowthState:
        scale = self.decay.scale(kimg)
        return self._state if scale == 1.0 else attrs.evolve(self._state, lr_scale=scale)


SCAN_POINTS = 20_000  # the schedule is read at this many kimg points to find its phases


@attrs.frozen
class Phase:
    start_kimg: float
    end_kimg: float
    resolution: int
    fading: bool
    batch_size: int
    alpha_range: tuple[float, float]

    @property
    def name(self) -> str:
        return f"{'fade to' if self.fading else 'stable'} {self.resolution}px"


def phases(schedule, total_kimg: float) -> list[Phase]:
    """The schedule's phases up to total_kimg: runs of equal (resolution, fading, batch size)."""
    def key(kimg):
        state = schedule.state(kimg)
        return (state.resolution, state.fading, state.batch_size)

    found: list[Phase] = []
    previous = None
    for i in range(SCAN_POINTS):
        kimg = total_kimg * i / SCAN_POINTS
        if previous is not None and key(previous) != key(kimg):
            lo, hi = round(previous * 1000), round(kimg * 1000)  # bisect to one image
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if key(mid / 1000) == key(previous) else (lo, mid)
            kimg = hi / 1000
        previous = kimg
        state = schedule.state(kimg)
        last = found[-1] if found else None
        if last is not None and (last.resolution, last.fading, last.batch_size) == key(kimg):
            found[-1] = attrs.evolve(last, end_kimg=kimg, alpha_range=(last.alpha_range[0], state.alpha))
        else:
            found.append(Phase(kimg, kimg, state.resolution, state.fading, state.batch_size,
                               (state.alpha, state.alpha)))
    return [attrs.evolve(p, end_kimg=(found[i + 1].start_kimg if i + 1 < len(found) else total_kimg))
            for i, p in enumerate(found)]
