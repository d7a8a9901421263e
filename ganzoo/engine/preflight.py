"""`ganzoo run RECIPE --preflight`: a few iterations of every phase of the schedule, each with
its real resolution, batch size and learning rate, before days are spent on the real run.

Nothing is written into out_dir and no snapshot is read: the trainer is built as for a fresh
run, moved to each phase's first kimg, and thrown away.
"""

from __future__ import annotations

import time

import attrs
import torch
from rich.table import Table

from ganzoo.engine.runlog import format_duration, peak_memory_mb
from ganzoo.errors import UserError

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


def preflight(trainer, console, iterations: int = 3) -> None:
    """Run `iterations` iterations at the start of every phase; print the table and the
    estimated wall time; a failing phase is a UserError naming it, its kimg and the fix."""
    recipe = trainer.recipe
    rows = []
    for phase in phases(trainer.schedule, recipe.train.kimg):
        trainer.images = round(phase.start_kimg * 1000)
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(trainer.device)
        times = []
        try:
            for _ in range(iterations):
                state = trainer._apply_schedule()
                if trainer.device.type == "cuda":
                    torch.cuda.synchronize(trainer.device)
                started = time.perf_counter()
                trainer.train_iteration(state)
                if trainer.device.type == "cuda":
                    torch.cuda.synchronize(trainer.device)
                times.append(time.perf_counter() - started)
        except torch.cuda.OutOfMemoryError:
            raise UserError(f"preflight: phase '{phase.name}' (from {phase.start_kimg:g} kimg, batch "
                            f"{phase.batch_size}) runs out of GPU memory; lower its batch size in "
                            "[schedule] batch_size or use run.precision = \"bf16\"") from None
        except UserError as exc:
            raise UserError(f"preflight: phase '{phase.name}' (from {phase.start_kimg:g} kimg): {exc}") from None
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"preflight: phase '{phase.name}' (from {phase.start_kimg:g} kimg, batch "
                            f"{phase.batch_size}) fails: {first}; fix the recipe's values for "
                            f"{phase.resolution}px (batch size, group size) and preflight again") from None
        per_iteration = min(times[1:] or times)  # the first iteration warms caches up
        images = (phase.end_kimg - phase.start_kimg) * 1000
        seconds = images / (phase.batch_size * recipe.train.n_critic) * per_iteration
        rows.append((phase, per_iteration, peak_memory_mb(trainer.device), seconds))

    table = Table(title=f"preflight: {recipe.train.kimg:g} kimg on {trainer.device.type}")
    for column in ("phase", "kimg", "resolution", "alpha", "batch", "ms/iter", "peak MB", "est. time"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for phase, per_iteration, memory, seconds in rows:
        alpha = (f"{phase.alpha_range[0]:.2f}-{phase.alpha_range[1]:.2f}" if phase.fading else "1")
        table.add_row(phase.name, f"{phase.start_kimg:g}-{phase.end_kimg:g}", str(phase.resolution),
                      alpha, str(phase.batch_size), f"{per_iteration * 1000:.1f}", f"{memory:,.0f}",
                      format_duration(seconds))
    console.print(table)
    total = sum(seconds for *_, seconds in rows)
    console.print(f"estimated wall time of the full run: {format_duration(total)} "
                  f"({len(rows)} phases; iteration times measured here, samples and snapshots not counted)",
                  highlight=False)
