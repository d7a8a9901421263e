"""Conditioning blocks, registered for any family: label replication and an auxiliary class head."""

from __future__ import annotations

import torch
from torch import nn


class LabelConcat(nn.Module):
    """Concatenate labels (N, L), replicated over every pixel, to a feature map (N, C, H, W).

    The result is (N, C + L, H, W): channel C + l holds labels[:, l] at every position, which
    is how StarGAN's generator sees its target domain (paper, section 3; works for H = W = 1,
    i.e. a latent vector viewed as a 1x1 map). No parameters.
    """

    def __init__(self):  # takes no settings (nn.Module's own accepts any)
        super().__init__()

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"label_concat: expected a feature map (N, C, H, W), got shape {tuple(x.shape)}")
        labels = labels.reshape(labels.shape[0], -1)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"label_concat: {x.shape[0]} feature maps but {labels.shape[0]} label rows")
        planes = labels.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return torch.cat([x, planes], dim=1)


class ClassHead(nn.Conv2d):
    """Class logits (N, label_dim) from a critic's final feature map (N, in_channels, k, k).

    One k x k convolution without bias (StarGAN's D_cls, `conv2` in the official code), so
    `kernel_size` must equal the map's spatial size. A `Conv2d` itself, so its parameter is
    `weight` (label_dim, in_channels, k, k), PyTorch's default init.
    """

    def __init__(self, in_channels: int, label_dim: int, kernel_size: int):
        super().__init__(in_channels, label_dim, kernel_size, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        if h.dim() != 4 or tuple(h.shape[-2:]) != k:
            raise ValueError(f"class_head: expected a {k[0]}x{k[1]} feature map, "
                             f"got shape {tuple(h.shape)}")
        return super().forward(h).reshape(h.shape[0], -1)
