"""Sliced Wasserstein distance (placeholder while being written)."""

from __future__ import annotations


class SlicedWasserstein:
    def __init__(self, **params):
        self.params = params

    def __call__(self, ctx):
        raise NotImplementedError("swd is being implemented")
