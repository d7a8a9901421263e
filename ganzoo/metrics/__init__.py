"""Moved: the metric contract is `ganzoo.evaluation` (public as `ganzoo.EvalContext`)."""

from ganzoo.evaluation import EvalContext, run_metrics

__all__ = ["EvalContext", "run_metrics"]
