"""`ganzoo run RECIPE --preflight`: a few iterations of every phase of the schedule, each with
its real resolution, batch size and learning rate, before days are spent on the real run.

Nothing is written into out_dir and no snapshot is read: the trainer is built as for a fresh
run, moved to each phase's first kimg, and thrown away.
"""

from __future__ import annotations

import time

import torch
from rich.table import Table

from ganzoo.engine.runlog import format_duration, peak_memory_mb
from ganzoo.errors import UserError

def check_batch_sizes(trainer) -> None:
    """Every batch size the schedule will use, checked now rather than at kimg 8,800."""
    for phase in trainer.phases:
        batch, where = phase.batch_size, f"{phase.resolution}px (from {phase.start_kimg:g} kimg)"
        if batch % trainer.dist.world:
            raise UserError(f"the batch size {batch} at {where} is not divisible by the "
                            f"{trainer.dist.world} processes; change [schedule] batch_size or the process count")
        try:
            trainer.model.check_batch_size(batch // trainer.dist.world)
        except ValueError as exc:
            raise UserError(f"the batch size {batch} at {where} does not fit the model: {exc}") from None


def check_lr_lasts(trainer) -> None:
    """A schedule whose lr decays to 0 before train.kimg would spend the rest training nothing:
    the trap of raising train.kimg on a recipe with a linear decay and forgetting its end."""
    kimg = trainer.recipe.train.kimg
    last = kimg - trainer.phases[-1].batch_size / 1000  # the last iteration's kimg
    if trainer.phases and last > 0 and trainer.schedule.state(last).lr_scale <= 0:
        raise UserError(f"the schedule's lr reaches 0 before train.kimg ({kimg:g}), so the last "
                        f"kimg would train nothing; end the decay there too ([schedule] "
                        f"decay_end_kimg = {kimg:g})")


def preflight(trainer, console, iterations: int = 3) -> None:
    """Run `iterations` iterations at the start of every phase; print the table and the
    estimated wall time; a failing phase is a UserError naming it, its kimg and the fix."""
    recipe = trainer.recipe
    rows = []
    for phase in trainer.phases:
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
