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


class FixedSchedule:
    """No growth: the target resolution and train.batch_size throughout; optional linear lr decay."""

    def __init__(self, *, resolution: int, train_batch_size: int, decay_start_kimg: float | None = None,
                 decay_end_kimg: float | None = None):
        if (decay_start_kimg is None) != (decay_end_kimg is None):
            raise UserError("[schedule] linear decay needs both decay_start_kimg and decay_end_kimg")
        if decay_start_kimg is not None and not (
                checks.at_least(decay_start_kimg, 0, "[schedule] decay_start_kimg")
                < checks.finite(decay_end_kimg, "[schedule] decay_end_kimg")):
            raise UserError(f"[schedule] needs decay_start_kimg < decay_end_kimg, got "
                            f"{decay_start_kimg} and {decay_end_kimg}")
        self.decay = (decay_start_kimg, decay_end_kimg) if decay_start_kimg is not None else None
        self._state = GrowthState(resolution=resolution, batch_size=train_batch_size)

    def state(self, kimg: float) -> GrowthState:
        if self.decay is None or kimg <= self.decay[0]:
            return self._state
        start, end = self.decay
        # Linear decay to 0 between start and end (StarGAN, section 4; CycleGAN's schedule).
        return attrs.evolve(self._state, lr_scale=max(0.0, (end - kimg) / (end - start)))
