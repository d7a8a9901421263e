"""MS-SSIM (placeholder while being written)."""

from __future__ import annotations


class MSSSIM:
    def __init__(self, **params):
        self.params = params

    def __call__(self, ctx):
        raise NotImplementedError("ms_ssim is being implemented")
