"""Growth schedules: where training stands at a given kimg.

A schedule is registered (hook `ganzoo_register_schedules`) as a class built from its
[schedule] table plus `resolution` (the target) and `batch_size` (train.batch_size), both
keyword arguments supplied by the engine. Its `state(kimg)` must be a pure function of kimg,
so a resumed run lands in exactly the state it left.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class GrowthState:
    resolution: int  # the networks' current output / input size
    alpha: float = 1.0  # fade-in of the newest layers, 1 when stable
    batch_size: int = 64
    lr: float | None = None  # overrides both optimizers' lr when set
    phase: int = 0  # changes whenever a new stage begins (optimizers may be reset then)
    reset_optimizers: bool = False  # reset optimizer state when `phase` changes

    @property
    def fading(self) -> bool:
        return self.alpha < 1.0


class FixedSchedule:
    """No growth: the target resolution and train.batch_size throughout."""

    def __init__(self, *, resolution: int, batch_size: int):
        self._state = GrowthState(resolution=resolution, batch_size=batch_size)

    def state(self, kimg: float) -> GrowthState:
        return self._state
