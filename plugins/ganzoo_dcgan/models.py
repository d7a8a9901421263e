"""The DCGAN generator and discriminator (Radford, Metz & Chintala, ICLR 2016).

Every layer is looked up by name in the core's registries, so a recipe can swap the
convolutions (`conv`, `conv_transpose`) or the normalizers (`normalizer`, `d_normalizer`).

With `conditional = true` the same parts make an AC-GAN (Odena, Olah & Shlens, ICML 2017):
G sees z concatenated with the target labels (the registered `label_concat` block on the
(N, latent_dim, 1, 1) input), and D gets an auxiliary classifier (the registered `class_head`
block on its final 4x4 feature map) and returns (scores, class_logits). Train it with an
adversarial loss plus `domain_classification`.
"""

from __future__ import annotations

import ganzoo
import torch
from ganzoo import checks
from torch import nn

MIN_RESOLUTION, MAX_RESOLUTION = 32, 256
LEAK = 0.2  # LeakyReLU slope in D (paper, section 3)
# Activations are not in-place: a swapped-in normalizer may save its output for backward.
INIT_STD = 0.02

# Normalizers that subtract a per-channel mean make a preceding conv bias redundant.
_MEAN_SUBTRACTING = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def _norm_and_bias(normalizer: str, num_features: int) -> tuple[nn.Module, bool]:
    norm = ganzoo.make_normalizer(normalizer, num_features)
    return norm, not isinstance(norm, _MEAN_SUBTRACTING)


def _conditioning_block(name: str):
    """A conditioning block from the registry (first-party: the stargan plugin registers them)."""
    blocks = ganzoo.registry("blocks")
    if name not in blocks.names():
        raise ganzoo.UserError(f"dcgan: conditional = true needs the block '{name}', which no "
                               f"loaded plugin registers (the stargan plugin does; is it "
                               f"disabled or broken? see `ganzoo list plugins`)")
    return blocks.get(name)


def _channels(resolution: int, size: int, base_channels: int, max_channels: int) -> int:
    """Feature maps at spatial `size`: `base_channels` at resolution/2, doubling towards 4x4."""
    return min(base_channels * (resolution // (2 * size)), max_channels)


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) -> images (N, channels, R, R) in [-1, 1] by strided transposed convs."""

    def __init__(self, *, resolution: int, channels: int, label_dim: int, latent_dim: int,
                 base_channels: int, max_channels: int, normalizer: str, conv_transpose: str,
                 conditional: bool = False):
        super().__init__()
        self.resolution, self.label_dim, self.latent_dim = resolution, label_dim, latent_dim
        self.conditional = conditional
        deconv = ganzoo.registry("blocks").get(conv_transpose)
        if conditional:  # z and the labels as one (N, latent_dim + label_dim, 1, 1) input
            self.label_concat = _conditioning_block("label_concat")()
        layers: list[nn.Module] = []
        size, in_ch = 1, latent_dim + (label_dim if conditional else 0)
        while size < resolution // 2:
            # 1x1 -> 4x4 (the paper's "project and reshape"), then doubling up to R/2.
            stride, padding = (1, 0) if size == 1 else (2, 1)
            size = 4 if size == 1 else size * 2
            out_ch = _channels(resolution, size, base_channels, max_channels)
            norm, bias = _norm_and_bias(normalizer, out_ch)
            layers += [deconv(in_ch, out_ch, 4, stride, padding, bias=bias), norm, nn.ReLU()]
            in_ch = out_ch
        # The output layer has no normalizer (paper, section 3).
        layers += [deconv(in_ch, channels, 4, 2, 1, bias=True), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = z.reshape(z.shape[0], -1, 1, 1)
        if not self.conditional:  # `labels` is accepted for the engine's calling convention
            return self.net(x)
        if labels is None or labels.reshape(labels.shape[0], -1).shape[1] != self.label_dim:
            got = None if labels is None else tuple(labels.shape)
            raise ValueError(f"conditional dcgan generator: needs labels of shape "
                             f"(N, {self.label_dim}), got {got}")
        return self.net(self.label_concat(x, labels))


class DCGANDiscriminator(nn.Module):
    """images (N, channels, R, R) -> scores (N,) (logits) by strided convs and LeakyReLU.

    Conditional: -> (scores (N,), class_logits (N, label_dim)), the class logits from the
    `class_head` block on the same final 4x4 feature map the score is computed from.
    """

    def __init__(self, *, resolution: int, channels: int, label_dim: int, base_channels: int,
                 max_channels: int, normalizer: str, conv: str, conditional: bool = False):
        super().__init__()
        self.resolution, self.label_dim = resolution, label_dim
        self.conditional = conditional
        conv_cls = ganzoo.registry("blocks").get(conv)
        layers: list[nn.Module] = []
        size, in_ch = resolution, channels
        while size > 4:
            size //= 2
            out_ch = _channels(resolution, size, base_channels, max_channels)
            if not layers:
                # The input layer has no normalizer (paper, section 3).
                norm, bias = nn.Identity(), True
            else:
                norm, bias = _norm_and_bias(normalizer, out_ch)
            layers += [conv_cls(in_ch, out_ch, 4, 2, 1, bias=bias), norm,
                       nn.LeakyReLU(LEAK)]
            in_ch = out_ch
        layers.append(conv_cls(in_ch, 1, 4, 1, 0, bias=True))  # 4x4 valid -> one logit
        self.net = nn.Sequential(*layers)
        if conditional:  # AC-GAN's auxiliary classifier, beside the score on the 4x4 map
            self.class_head = _conditioning_block("class_head")(in_ch, label_dim, 4)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        # `labels` is accepted for the engine's calling convention; D never sees them (AC-GAN:
        # it infers them with its class head instead).
        if not self.conditional:
            return self.net(images).reshape(images.shape[0])
        h = images
        for layer in self.net[:-1]:
            h = layer(h)
        return self.net[-1](h).reshape(images.shape[0]), self.class_head(h)


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al. 2016, section 4: weights ~ N(0, 0.02); BatchNorm scales ~ N(1, 0.02).

    Only plain torch layers are re-initialized: a swapped-in block (e.g. an equalized-lr conv)
    keeps the init its own scheme depends on.
    """
    for m in module.modules():
        if type(m) in (nn.Conv2d, nn.ConvTranspose2d, nn.Linear):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight, 1.0, INIT_STD)  # centred on 1: a zero scale would mute the layer
            nn.init.zeros_(m.bias)


def build_dcgan(*, resolution: int, channels: int = 3, label_dim: int = 0, latent_dim: int = 100,
                base_channels: int = 64, max_channels: int = 512, normalizer: str = "batch",
                d_normalizer: str | None = None, conv: str = "conv2d",
                conv_transpose: str = "conv_transpose2d",
                conditional: bool = False) -> ganzoo.GANModel:
    """DCGAN (Radford et al. 2016): all-convolutional G and D with BatchNorm, any 32-256 px.

    `base_channels` is the width of G's last hidden layer (and D's first), doubling towards
    4x4 up to `max_channels`; at 64 px with the defaults G runs 512-256-128-64 as in the paper.
    `d_normalizer` defaults to `normalizer`; D's input layer and G's output layer are never
    normalized. Unconditional by default: `label_dim` is stored and labels are ignored.

    `conditional = true` (needs a dataset with attributes, label_dim > 0) makes it an AC-GAN
    (Odena et al. 2017): G's input is z concatenated with the target labels (`label_concat`)
    and D returns (scores, class_logits) from a `class_head` on its final 4x4 map; pair it
    with the `domain_classification` loss (kind = "multi_label" for independent attributes).
    """
    checks.power_of_two(resolution, "dcgan: resolution", MIN_RESOLUTION, MAX_RESOLUTION)
    checks.count(channels, "dcgan: channels")
    checks.count(label_dim, "dcgan: label_dim", minimum=0)
    checks.count(latent_dim, "dcgan: latent_dim")
    checks.count(base_channels, "dcgan: base_channels")
    checks.count(max_channels, "dcgan: max_channels")
    checks.boolean(conditional, "dcgan: conditional")
    if conditional and label_dim == 0:
        raise ganzoo.UserError(
            "dcgan: conditional = true needs labels to condition on, but the dataset has no "
            "attributes (label_dim = 0); pick a dataset with attributes (e.g. toyfaces) or set "
            "conditional = false")
    generator = DCGANGenerator(resolution=resolution, channels=channels, label_dim=label_dim,
                               latent_dim=latent_dim, base_channels=base_channels,
                               max_channels=max_channels, normalizer=normalizer,
                               conv_transpose=conv_transpose, conditional=conditional)
    discriminator = DCGANDiscriminator(resolution=resolution, channels=channels,
                                       label_dim=label_dim, base_channels=base_channels,
                                       max_channels=max_channels,
                                       normalizer=d_normalizer or normalizer, conv=conv,
                                       conditional=conditional)
    init_dcgan_weights(generator)
    init_dcgan_weights(discriminator)
    # z is drawn from a uniform distribution (paper, section 3: "a 100 dimensional uniform distribution Z").
    return ganzoo.GANModel(generator, discriminator, latent_dim, prior="uniform", conditional=conditional)
