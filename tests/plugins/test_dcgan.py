"""The DCGAN plugin, exercised only through ganzoo's public registries."""

from __future__ import annotations

import math

import ganzoo
import pytest
import torch
from torch import nn

SMALL = dict(latent_dim=8, base_channels=4, max_channels=32)
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def build(**params) -> ganzoo.GANModel:
    return ganzoo.registry("models").get("dcgan")(**params)


def loss(name: str, **params):
    return ganzoo.registry("losses").get(name)(**params)


def convs(net: nn.Module, kind=nn.modules.conv._ConvNd) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, kind)]


def has(net: nn.Module, kind) -> bool:
    return any(isinstance(m, kind) for m in net.modules())


# --- model -----------------------------------------------------------------------------------

@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_shapes_and_range(resolution):
    torch.manual_seed(0)
    model = build(resolution=resolution, **SMALL)
    z = model.sample_latents(2)
    images = model.generator(z)
    assert images.shape == (2, 3, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1
    assert model.discriminator(images).shape == (2,)
    assert model.latent_dim == 8


def test_default_widths_follow_the_paper_at_64px():
    model = build(resolution=64)
    g = [m.out_channels for m in convs(model.generator)]
    d = [m.out_channels for m in convs(model.discriminator)]
    assert g == [512, 256, 128, 64, 3]
    assert d == [64, 128, 256, 512, 1]
    assert convs(model.generator)[0].in_channels == 100


def test_max_channels_caps_the_width():
    model = build(resolution=256, base_channels=8, max_channels=16, latent_dim=4)
    assert max(m.out_channels for m in convs(model.generator)) == 16
    assert max(m.out_channels for m in convs(model.discriminator)) == 16


def test_channels_and_grayscale():
    model = build(resolution=32, channels=1, **SMALL)
    images = model.generator(model.sample_latents(3))
    assert images.shape == (3, 1, 32, 32)
    assert model.discriminator(images).shape == (3,)


@pytest.mark.parametrize("resolution", [16, 48, 100, 512, 64.0, True, "64"])
def test_bad_resolution_is_a_user_error(resolution):
    with pytest.raises(ganzoo.UserError, match="resolution"):
        build(resolution=resolution)


@pytest.mark.parametrize("param, value", [("latent_dim", 0), ("base_channels", 0),
                                          ("channels", 0), ("label_dim", -1),
                                          ("max_channels", 2.5)])
def test_bad_params_are_user_errors(param, value):
    with pytest.raises(ganzoo.UserError, match=param):
        build(resolution=32, **{param: value})


@pytest.mark.parametrize("param", ["normalizer", "d_normalizer", "conv", "conv_transpose"])
def test_unknown_part_names_are_the_registrys_user_error(param):
    with pytest.raises(ganzoo.UserError, match="unknown"):
        build(resolution=32, **SMALL, **{param: "no_such_part"})


def test_init_statistics():
    torch.manual_seed(0)
    model = build(resolution=64)
    for net in (model.generator, model.discriminator):
        weights = torch.cat([m.weight.flatten() for m in convs(net)])
        assert weights.mean().item() == pytest.approx(0.0, abs=1e-3)
        assert weights.std().item() == pytest.approx(0.02, rel=0.02)
        assert all((m.bias is None) or not m.bias.any() for m in convs(net))
        bn = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bn
        scales = torch.cat([m.weight for m in bn])
        assert scales.mean().item() == pytest.approx(1.0, abs=0.005)
        assert scales.std().item() == pytest.approx(0.02, rel=0.2)
        assert not torch.cat([m.bias for m in bn]).any()


@pytest.mark.parametrize("name, present", [("instance", nn.InstanceNorm2d), ("none", None)])
def test_normalizer_swap_really_swaps(name, present):
    model = build(resolution=32, normalizer=name, **SMALL)
    for net in (model.generator, model.discriminator):
        assert not has(net, nn.BatchNorm2d)
        if present is None:
            assert not has(net, NORMS)
        else:
            assert has(net, present)
        # Without a mean-subtracting normalizer after them, convs keep their bias.
        if present is None:
            assert all(m.bias is not None for m in convs(net))


def test_d_normalizer_only_touches_d():
    model = build(resolution=32, d_normalizer="layer", **SMALL)
    assert has(model.generator, nn.BatchNorm2d) and not has(model.generator, nn.GroupNorm)
    assert has(model.discriminator, nn.GroupNorm) and not has(model.discriminator, nn.BatchNorm2d)


def _modules_in_order(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if not list(m.children())]


def test_d_input_layer_and_g_output_layer_are_not_normalized():
    model = build(resolution=64, **SMALL)
    d = _modules_in_order(model.discriminator)
    first_act = next(i for i, m in enumerate(d) if isinstance(m, nn.LeakyReLU))
    assert isinstance(d[0], nn.Conv2d) and not any(isinstance(m, NORMS) for m in d[:first_act])
    assert d[first_act].negative_slope == pytest.approx(0.2)
    # Every later D block is normalized: one BatchNorm per strided conv after the first.
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d) == len(convs(model.discriminator)) - 2
    g = _modules_in_order(model.generator)
    assert isinstance(g[-2], nn.ConvTranspose2d) and isinstance(g[-1], nn.Tanh)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g) == len(convs(model.generator)) - 1


def test_labels_are_accepted_and_ignored():
    torch.manual_seed(0)
    model = build(resolution=32, label_dim=5, **SMALL)
    model.generator.eval(), model.discriminator.eval()
    z, labels = model.sample_latents(2), torch.ones(2, 5)
    assert torch.equal(model.generator(z, labels), model.generator(z))
    x = model.generator(z)
    assert torch.equal(model.discriminator(x, labels), model.discriminator(x))
    assert model.generator.label_dim == 5 and model.discriminator.label_dim == 5


def test_latents_may_come_as_4d():
    torch.manual_seed(0)
    model = build(resolution=32, **SMALL)
    model.generator.eval()
    z = model.sample_latents(2)
    assert torch.equal(model.generator(z.view(2, 8, 1, 1)), model.generator(z))


def test_blocks_are_looked_up_by_name():
    class Tagged(nn.Conv2d):
        """A conv2d that a test can spot."""

    class TaggedT(nn.ConvTranspose2d):
        """A conv_transpose2d that a test can spot."""

    class TestBlocks:
        @ganzoo.hookimpl
        def ganzoo_register_blocks(self, register):
            register("tagged_conv", Tagged)
            register("tagged_deconv", TaggedT)

    ganzoo.plugins.state().add_plugin("test_blocks", TestBlocks())
    try:
        model = build(resolution=32, conv="tagged_conv", conv_transpose="tagged_deconv", **SMALL)
        assert all(type(m) is Tagged for m in convs(model.discriminator))
        assert all(type(m) is TaggedT for m in convs(model.generator))
        # A swapped-in block keeps its own init (the DCGAN init only touches plain torch layers).
        assert model.generator(model.sample_latents(2)).shape == (2, 3, 32, 32)
    finally:
        ganzoo.plugins.reset()


def test_one_training_step_runs():
    torch.manual_seed(0)
    model = build(resolution=32, **SMALL)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    fake = model.generator(model.sample_latents(4))
    terms = loss("nonsaturating")
    d_ctx = ganzoo.LossContext(real=real, fake=fake.detach(), discriminator=model.discriminator,
                               phase="discriminator")
    d_loss = terms.discriminator_loss(d_ctx)
    d_loss.backward()
    assert torch.isfinite(d_loss)
    assert all(p.grad is None for p in model.generator.parameters())
    g_ctx = ganzoo.LossContext(real=real, fake=fake, discriminator=model.discriminator,
                               phase="generator")
    terms.generator_loss(g_ctx).backward()
    assert all(p.grad is not None for p in model.generator.parameters())


# --- losses ----------------------------------------------------------------------------------

def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


REAL, FAKE = [2.0, -0.5, 0.3], [-1.5, 0.7, -3.0]


def context(real_scores, fake_scores, phase="discriminator") -> ganzoo.LossContext:
    """A context whose stub critic returns preset scores: each 'image' is its own score."""
    real = torch.tensor(real_scores).reshape(-1, 1)
    fake = torch.tensor(fake_scores).reshape(-1, 1)
    return ganzoo.LossContext(real=real, fake=fake, discriminator=lambda x: x.reshape(-1),
                              phase=phase)


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


@pytest.mark.parametrize("name", ["bce", "nonsaturating"])
def test_discriminator_loss_is_binary_cross_entropy(name):
    expected = (mean(-math.log(sigmoid(r)) for r in REAL)
                + mean(-math.log(1 - sigmoid(f)) for f in FAKE))
    got = loss(name).discriminator_loss(context(REAL, FAKE))
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_minimax_generator_loss():
    expected = mean(math.log(1 - sigmoid(f)) for f in FAKE)
    got = loss("bce").generator_loss(context(REAL, FAKE, "generator"))
    assert got.shape == () and got.item() == pytest.approx(expected, rel=1e-6)


def test_nonsaturating_generator_loss():
    expected = mean(-math.log(sigmoid(f)) for f in FAKE)
    got = loss("nonsaturating").generator_loss(context(REAL, FAKE, "generator"))
    assert got.shape == () and got.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["bce", "nonsaturating"])
def test_one_sided_label_smoothing(name):
    t = 0.9
    expected = (mean(-(t * math.log(sigmoid(r)) + (1 - t) * math.log(1 - sigmoid(r)))
                     for r in REAL)
                + mean(-math.log(1 - sigmoid(f)) for f in FAKE))  # fakes keep target 0
    got = loss(name, label_smoothing=0.1).discriminator_loss(context(REAL, FAKE))
    assert got.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("value", [-0.1, 1.0, "0.1", True])
def test_bad_label_smoothing_is_a_user_error(value):
    with pytest.raises(ganzoo.UserError, match="label_smoothing"):
        loss("bce", label_smoothing=value)


def _grad_wrt_score(name: str, score: float) -> float:
    fake = torch.tensor([score], requires_grad=True)
    ctx = ganzoo.LossContext(real=torch.zeros(1), fake=fake, discriminator=lambda x: x,
                             phase="generator")
    loss(name).generator_loss(ctx).backward()
    return fake.grad.item()


def test_minimax_saturates_where_nonsaturating_does_not():
    # D confidently rejects the fakes: minimax's gradient -sigmoid(x) vanishes, the
    # non-saturating one -(1 - sigmoid(x)) stays ~ -1 (Goodfellow et al. 2014, section 3).
    minimax, nonsat = _grad_wrt_score("bce", -10.0), _grad_wrt_score("nonsaturating", -10.0)
    assert minimax == pytest.approx(-sigmoid(-10.0), rel=1e-4) and abs(minimax) < 1e-4
    assert nonsat == pytest.approx(-(1 - sigmoid(-10.0)), rel=1e-4)
    # Both push the score up (lowering either loss raises D(G(z))).
    assert minimax < 0 and nonsat < 0


def test_huge_scores_stay_finite():
    ctx = context([1e4, -1e4], [1e4, -1e4])
    for name in ("bce", "nonsaturating"):
        assert torch.isfinite(loss(name).discriminator_loss(ctx))
        assert torch.isfinite(loss(name).generator_loss(ctx))


# --- provenance ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, name", [("models", "dcgan"), ("losses", "bce"),
                                        ("losses", "nonsaturating")])
def test_entries_carry_provenance(kind, name):
    entry = ganzoo.registry(kind).entry(name)
    assert entry.plugin == "dcgan"
    assert entry.distribution == "ganzoo"
    assert entry.summary and "\n" not in entry.summary
