"""The training engine: building a run from a recipe, the loop, EMA, schedules, checkpoints."""
