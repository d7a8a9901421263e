"""The StarGAN generator and discriminator (Choi et al., CVPR 2018, appendix / official code).

G translates an image into the domain given by a label vector: the labels, replicated over
every pixel, are concatenated to the image (`label_concat`); then a 7x7 conv, two stride-2
downsamplings, residual blocks, two stride-2 transposed-conv upsamplings and a 7x7 conv to
RGB with tanh. Instance normalization everywhere but the output layer, no conv biases.

D is a PatchGAN: stride-2 4x4 convs with LeakyReLU(0.01) and no normalization, then two
heads on the final map: D_src (3x3 conv to one channel, a realness score per patch) and
D_cls (`class_head`, a conv as large as the map, to one logit per attribute).

Both use PyTorch's default initialization, as the official code does (it never re-initializes).
Module names and order follow the official code, so state-dict keys match its checkpoints
(`main.*` for G; `main.*`, `conv1`, `conv2` for D).
"""

from __future__ import annotations

import math

import ganzoo
import torch
from ganzoo import checks
from torch import nn

from ganzoo_stargan.blocks import ClassHead, LabelConcat
from ganzoo_stargan.translation import TranslationModel

LEAK = 0.01  # D's LeakyReLU slope (official model.py)
D_REPEAT_DEFAULT = 6  # the official d_repeat_num
SKIP_LIMIT = 0.999  # input_skip: |x| clamped below 1 so atanh(x) stays finite (atanh(0.999) = 3.8)
# Activations are not in-place: a swapped-in normalizer may save its output for backward.

_MEAN_SUBTRACTING = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def _norm(normalizer: str, num_features: int) -> tuple[nn.Module, bool]:
    """The normalizer and whether the conv before it needs a bias (not before a mean-subtracting one).

    The official G has no conv biases at all; with `normalizer = "none"` the hidden convs get one.
    """
    norm = ganzoo.make_normalizer(normalizer, num_features)
    return norm, not isinstance(norm, _MEAN_SUBTRACTING)


class ResidualBlock(nn.Module):
    """x + (conv3x3 - norm - ReLU - conv3x3 - norm)(x)."""

    def __init__(self, dim: int, normalizer: str):
        super().__init__()
        norm1, bias = _norm(normalizer, dim)
        norm2, _ = _norm(normalizer, dim)
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=bias), norm1, nn.ReLU(),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=bias), norm2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class StarGANGenerator(nn.Module):
    """(images (N, C, R, R) in [-1, 1], target labels (N, label_dim)) -> images (N, C, R, R).

    Instance norms use each image's own statistics in eval mode too: the official code never
    calls eval() (with `track_running_stats=True`, eval mode would switch them to the running
    averages, which breaks its outputs; yunjey/stargan#102). Their running statistics are
    still tracked in training, as in the official code, and left untouched in eval mode.

    `input_skip` (not in the paper, whose G rebuilds every pixel from its bottleneck): the last
    conv's output h is added to atanh(input) before the tanh, so h = 0 returns the input and G
    has to learn only the change. In short runs the paper's G learns the identity far slower
    than the attribute change: backgrounds and skin drift, and the cycle loss is met by
    speckle that encodes the input instead (toyfaces, 20 kimg: L1 of unchanged pixels to the
    ground truth 0.26 without, 0.07 with).
    """

    def __init__(self, *, channels: int, label_dim: int, conv_dim: int, repeat_num: int,
                 normalizer: str, input_skip: bool = False):
        super().__init__()
        self.label_dim = label_dim
        self.input_skip = input_skip
        self.label_concat = LabelConcat()
        norm, bias = _norm(normalizer, conv_dim)
        layers: list[nn.Module] = [nn.Conv2d(channels + label_dim, conv_dim, 7, 1, 3, bias=bias),
                                   norm, nn.ReLU()]
        dim = conv_dim
        for _ in range(2):  # downsampling
            norm, bias = _norm(normalizer, dim * 2)
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=bias), norm, nn.ReLU()]
            dim *= 2
        layers += [ResidualBlock(dim, normalizer) for _ in range(repeat_num)]  # bottleneck
        for _ in range(2):  # upsampling
            norm, bias = _norm(normalizer, dim // 2)
            layers += [nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=bias), norm, nn.ReLU()]
            dim //= 2
        layers += [nn.Conv2d(dim, channels, 7, 1, 3, bias=False), nn.Tanh()]  # bias=False as official
        self.main = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None or labels.shape[-1] != self.label_dim:
            got = None if labels is None else tuple(labels.shape)
            raise ValueError(f"stargan generator: needs target labels of shape (N, {self.label_dim}), "
                             f"got {got}")
        if not self.input_skip:
            return self.main(self.label_concat(images, labels))
        # tanh(h + atanh(x)): the last conv's output h is a change to the input, G(x) = x at h = 0
        h = self.main[:-1](self.label_concat(images, labels))
        return torch.tanh(h + torch.atanh(images.clamp(-SKIP_LIMIT, SKIP_LIMIT)))

    def train(self, mode: bool = True) -> "StarGANGenerator":
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.instancenorm._InstanceNorm) and m.track_running_stats:
                if not hasattr(m, "_train_momentum"):
                    m._train_momentum = m.momentum
                m.training = True  # per-image statistics, always
                m.momentum = m._train_momentum if mode else 0.0  # eval: running stats unchanged
        return self


class StarGANDiscriminator(nn.Module):
    """images (N, C, R, R) -> (scores (N,), class logits (N, num_classes)).

    The score of an image is the mean of D_src's patch map, so `wasserstein` on the scores is
    exactly the official -mean(out_src) / mean(out_src). `patch_scores(images)` gives the map.
    """

    def __init__(self, *, resolution: int, channels: int, num_classes: int, conv_dim: int,
                 repeat_num: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, conv_dim, 4, 2, 1), nn.LeakyReLU(LEAK)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(LEAK)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.map_size = resolution >> repeat_num
        self.conv1 = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)  # D_src: PatchGAN
        self.conv2 = ClassHead(dim, num_classes, self.map_size)  # D_cls

    def patch_scores(self, images: torch.Tensor) -> torch.Tensor:
        """D_src's map (N, 1, k, k): one realness score per patch (official `out_src`)."""
        return self.conv1(self.main(images))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        # `labels` is accepted for the engine's calling convention; D infers them (D_cls).
        h = self.main(images)
        return self.conv1(h).mean(dim=(1, 2, 3)), self.conv2(h)


def build_stargan(*, resolution: int, channels: int = 3, label_dim: int = 0, conv_dim: int = 64,
                  repeat_num: int | None = None, g_repeat_num: int = 6, mask_dims: int = 0,
                  normalizer: str = "instance", input_skip: bool = False) -> TranslationModel:
    """StarGAN (Choi et al. 2018): one generator translating images between attribute domains.

    `conv_dim`: width of G's first layer and of D's first layer (official g/d_conv_dim 64).
    `g_repeat_num`: residual blocks in G (6). `repeat_num`: D's stride-2 convs; default
    min(6, log2(resolution) - 1), the official 6 from 128 px up (final map resolution / 64:
    2x2 at 128, 4x4 at 256) and a 2x2 map below. `mask_dims`: trailing label entries that are
    a mask vector over datasets (the `joint` dataset; paper section 3.2): G sees all label_dim
    entries, D classifies label_dim - mask_dims. `normalizer`: G's normalizer (registered
    name; "instance" = affine with running stats, as official). `input_skip` (not in the
    paper, default off): G's output is tanh(h + atanh(input)), so G learns a change to its input
    instead of rebuilding every pixel (see StarGANGenerator). Any power-of-two resolution >= 16.
    """
    checks.power_of_two(resolution, "stargan: resolution", minimum=16)
    checks.count(channels, "stargan: channels")
    checks.count(label_dim, "stargan: label_dim", minimum=0)
    checks.count(conv_dim, "stargan: conv_dim")
    checks.count(g_repeat_num, "stargan: g_repeat_num", minimum=0)
    checks.count(mask_dims, "stargan: mask_dims", minimum=0)
    levels = int(math.log2(resolution))
    if repeat_num is None:
        repeat_num = min(D_REPEAT_DEFAULT, levels - 1)
    elif checks.count(repeat_num, "stargan: repeat_num") > levels:
        raise ganzoo.UserError(f"stargan: repeat_num {repeat_num} halves a {resolution} px image "
                               f"below 1 pixel; at most {levels}")
    if label_dim <= mask_dims:
        raise ganzoo.UserError(
            f"stargan: translates between attribute domains, so the dataset needs labels: it has "
            f"{label_dim} label entries, of which mask_dims = {mask_dims} are the mask vector "
            f"(pick a dataset with attributes, e.g. celeba or toyfaces)")
    generator = StarGANGenerator(channels=channels, label_dim=label_dim, conv_dim=conv_dim,
                                 repeat_num=g_repeat_num, normalizer=normalizer,
                                 input_skip=input_skip)
    discriminator = StarGANDiscriminator(resolution=resolution, channels=channels,
                                         num_classes=label_dim - mask_dims, conv_dim=conv_dim,
                                         repeat_num=repeat_num)
    return TranslationModel(generator, discriminator, latent_dim=0)
