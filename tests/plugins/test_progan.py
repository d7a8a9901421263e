"""The ProGAN plugin (Karras et al. 2018), exercised only through ganzoo's public registries."""

from __future__ import annotations

import math

import attrs
import ganzoo
import pytest
import torch
import torch.nn.functional as F
from ganzoo_progan.layers import downscale2d, upscale2d
from torch import nn

TINY = dict(latent_dim=8, fmap_base=32, fmap_max=8)


pytestmark = pytest.mark.usefixtures("one_thread")


def block(name: str):
    return ganzoo.registry("blocks").get(name)


def build(**params) -> ganzoo.GANModel:
    return ganzoo.registry("models").get("progan")(**params)


def schedule(resolution: int = 64, train_batch_size: int = 16, **params):
    return ganzoo.registry("schedules").get("progressive")(resolution=resolution,
                                                           train_batch_size=train_batch_size, **params)


def upscale_nearest(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


# --- equalized learning rate (section 4.1) ---------------------------------------------------

@pytest.mark.parametrize("k, stride, padding, gain", [(3, 1, 1, 2 ** 0.5), (1, 1, 0, 1.0),
                                                      (4, 2, 1, 2 ** 0.5), (3, 1, 0, 0.7)])
def test_equalized_conv2d_is_conv_with_runtime_scaled_weight(k, stride, padding, gain):
    torch.manual_seed(0)
    conv = block("equalized_conv2d")(5, 7, k, stride, padding, gain=gain)
    with torch.no_grad():
        conv.bias.normal_()  # a non-zero bias, to see that it is added unscaled
    x = torch.randn(2, 5, 9, 9)
    expected = F.conv2d(x, conv.weight * (gain / math.sqrt(k * k * 5)), conv.bias, stride, padding)
    torch.testing.assert_close(conv(x), expected, rtol=0, atol=0)
    assert conv.weight.shape == (7, 5, k, k)
    assert conv.scale == pytest.approx(gain / math.sqrt(k * k * 5))


def test_equalized_conv2d_defaults_and_no_bias():
    conv = block("equalized_conv2d")(4, 6, 3)
    assert conv.gain == pytest.approx(math.sqrt(2))
    assert conv.stride == (1, 1) and conv.padding == (0, 0)
    x = torch.randn(1, 4, 5, 5)
    assert conv(x).shape == (1, 6, 3, 3)
    nobias = block("equalized_conv2d")(4, 6, 3, bias=False)
    assert nobias.bias is None
    torch.testing.assert_close(nobias(x), F.conv2d(x, nobias.weight * math.sqrt(2 / 36)))


@pytest.mark.parametrize("gain", [2 ** 0.5, 1.0, 2 ** 0.5 / 4])
def test_equalized_linear_is_linear_with_runtime_scaled_weight(gain):
    torch.manual_seed(0)
    lin = block("equalized_linear")(10, 3, gain=gain)
    with torch.no_grad():
        lin.bias.normal_()
    x = torch.randn(4, 10)
    expected = F.linear(x, lin.weight * (gain / math.sqrt(10)), lin.bias)
    torch.testing.assert_close(lin(x), expected, rtol=0, atol=0)
    assert block("equalized_linear")(10, 3).gain == pytest.approx(math.sqrt(2))
    assert block("equalized_linear")(10, 3, bias=False).bias is None


def test_equalized_init_is_unit_normal_and_zero_bias():
    torch.manual_seed(0)
    conv = block("equalized_conv2d")(64, 128, 3)
    lin = block("equalized_linear")(512, 256)
    for layer in (conv, lin):
        w = layer.weight.detach()
        assert w.mean().item() == pytest.approx(0.0, abs=0.01)
        assert w.std().item() == pytest.approx(1.0, abs=0.01)  # the stored weight, unscaled
        assert not layer.bias.any()


def test_equalized_gradient_is_scaled_like_the_weight():
    # w_eff = c * w, so dL/dw = c * dL/dw_eff: the stored parameter's gradient carries the scale.
    torch.manual_seed(0)
    conv = block("equalized_conv2d")(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 6, 6)
    conv(x).square().sum().backward()
    w_eff = (conv.weight.detach() * conv.scale).requires_grad_(True)
    F.conv2d(x, w_eff, conv.bias.detach(), padding=1).square().sum().backward()
    torch.testing.assert_close(conv.weight.grad, conv.scale * w_eff.grad)


def _relative_adam_update(layer: nn.Module, effective_scale: float, x: torch.Tensor) -> float:
    """Mean |change of the effective weight| after one Adam step, relative to He's std for the layer."""
    fan_in = layer.weight[0].numel()
    before = layer.weight.detach().clone() * effective_scale
    opt = torch.optim.Adam([layer.weight], lr=1e-3, betas=(0.0, 0.99), eps=1e-8)
    layer(x).square().mean().backward()
    opt.step()
    after = layer.weight.detach() * effective_scale
    return ((after - before).abs().mean() / math.sqrt(2 / fan_in)).item()


def test_equalized_lr_makes_adam_updates_scale_invariant():
    # Section 4.1: Adam moves every parameter by ~lr, so a layer whose weights are scaled at
    # run time by c = sqrt(2 / fan_in) moves its effective weights by ~c * lr: the same
    # fraction of their spread whatever the fan-in. Plain He-initialized layers move by ~lr
    # whatever their spread, so layers with a large fan-in learn relatively faster.
    torch.manual_seed(0)
    small = block("equalized_conv2d")(4, 8, 3, padding=1)  # fan_in 36
    large = block("equalized_conv2d")(256, 8, 3, padding=1)  # fan_in 2304
    rel_small = _relative_adam_update(small, small.scale, torch.randn(4, 4, 8, 8))
    rel_large = _relative_adam_update(large, large.scale, torch.randn(4, 256, 8, 8))
    assert rel_small == pytest.approx(1e-3, rel=1e-3)
    assert rel_large == pytest.approx(1e-3, rel=1e-3)
    plain = []
    for fan_in_channels in (4, 256):
        conv = nn.Conv2d(fan_in_channels, 8, 3, padding=1)
        nn.init.normal_(conv.weight, 0.0, math.sqrt(2 / (9 * fan_in_channels)))  # He init
        plain.append(_relative_adam_update(conv, 1.0, torch.randn(4, fan_in_channels, 8, 8)))
    assert plain[1] / plain[0] == pytest.approx(8.0, rel=1e-3)  # sqrt(2304 / 36)


# --- pixelnorm (section 4.2) and minibatch stddev (section 3) --------------------------------

def test_pixelnorm_formula():
    torch.manual_seed(0)
    norm = ganzoo.registry("normalizers").get("pixelnorm")()
    assert norm.eps == 1e-8
    x = torch.randn(3, 5, 4, 4) * 3
    expected = x / torch.sqrt((x ** 2).mean(dim=1, keepdim=True) + 1e-8)
    torch.testing.assert_close(norm(x), expected)
    # Feature vectors end up with unit mean square; 2-d inputs (N, C) normalize the same way.
    assert torch.allclose(norm(x).square().mean(dim=1), torch.ones(3, 4, 4), atol=1e-5)
    v = torch.randn(4, 7)
    torch.testing.assert_close(norm(v), v / torch.sqrt(v.square().mean(1, keepdim=True) + 1e-8))
    big = ganzoo.registry("normalizers").get("pixelnorm")(eps=1.0)
    torch.testing.assert_close(big(x), x / torch.sqrt((x ** 2).mean(1, keepdim=True) + 1.0))
    assert isinstance(ganzoo.make_normalizer("pixelnorm", 16), type(norm))


def _stddev_by_hand(x: torch.Tensor, group_size: int) -> list[float]:
    """Per sample: the stddev feature of its group, computed with explicit loops."""
    n = x.shape[0]
    g = min(group_size, n)
    m = n // g
    values = [0.0] * n
    for group in range(m):
        members = [group + m * i for i in range(g)]  # the official grouping: n -> n mod m
        total, count = 0.0, 0
        for c in range(x.shape[1]):
            for h in range(x.shape[2]):
                for w in range(x.shape[3]):
                    vals = [x[j, c, h, w].item() for j in members]
                    mean = sum(vals) / g
                    var = sum((v - mean) ** 2 for v in vals) / g  # biased
                    total += math.sqrt(var + 1e-8)
                    count += 1
        for j in members:
            values[j] = total / count
    return values


@pytest.mark.parametrize("n, group_size", [(8, 4), (4, 4), (3, 4), (6, 2), (5, 1)])
def test_minibatch_stddev_by_hand(n, group_size):
    torch.manual_seed(n)
    x = torch.randn(n, 3, 2, 2) * torch.arange(1, n + 1).view(n, 1, 1, 1)
    layer = block("minibatch_stddev")(group_size)
    out = layer(x)
    assert out.shape == (n, 4, 2, 2)
    assert torch.equal(out[:, :3], x)
    expected = torch.tensor(_stddev_by_hand(x, group_size))
    # One constant map per sample, holding its group's value.
    torch.testing.assert_close(out[:, 3], expected.view(n, 1, 1).expand(n, 2, 2))


def test_minibatch_stddev_groups_are_strided_like_the_official_code():
    # Samples 0 and 2 form one group, 1 and 3 the other: a batch that differs only within
    # the first group gives the first group a larger stddev.
    x = torch.zeros(4, 1, 1, 1)
    x[0], x[2] = -1.0, 1.0
    out = block("minibatch_stddev")(2)(x)[:, 1].flatten()
    assert out[0] == out[2] == pytest.approx(1.0, abs=1e-6)
    assert out[1] == out[3] == pytest.approx(1e-4, rel=1e-4)  # sqrt(0 + 1e-8)


def test_minibatch_stddev_rejects_a_batch_not_divisible_by_the_group_size():
    layer = block("minibatch_stddev")()
    assert layer.group_size == 4
    with pytest.raises(ValueError, match=r"batch size 6 .*group size 4") as info:
        layer(torch.randn(6, 2, 4, 4))
    assert isinstance(info.value, ganzoo.UserError)  # a recipe's batch size: exit code 2
    with pytest.raises(ganzoo.UserError, match="group_size"):
        block("minibatch_stddev")(0)


# --- resampling (appendix A.1: nearest upscaling) ---------------------------------------------

@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_upscale_replicates_pixels_and_keeps_the_memory_format(layout):
    # NHWC on CPU is the demo's layout: an upscale that fell back to NCHW would make every
    # following conv convert its input (and did cost ~12% of the 64 px step).
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=layout)
    by_hand = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.equal(upscale2d(x), by_hand)
    assert upscale2d(x).is_contiguous(memory_format=layout)
    leaf = x.clone().requires_grad_()
    grad, = torch.autograd.grad(upscale2d(leaf).square().sum(), leaf)
    torch.testing.assert_close(grad, 2 * 4 * x)  # each pixel feeds its 2x2 copies
    assert torch.autograd.gradgradcheck(upscale2d, (leaf,))


def _layout_mixing_ops(fn) -> list[str]:
    """The ops `fn` dispatches with NCHW and NHWC 4-d tensors side by side (slow on CPU)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    def layout(t):
        nchw, nhwc = t.is_contiguous(), t.is_contiguous(memory_format=torch.channels_last)
        return "nchw" if nchw and not nhwc else "nhwc" if nhwc and not nchw else None

    found = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen = {layout(a) for a in args if isinstance(a, torch.Tensor) and a.dim() == 4}
            if {"nchw", "nhwc"} <= seen:
                found.append(str(func))
            return func(*args, **(kwargs or {}))

    with Watch():
        fn()
    return found


def test_downscale_is_average_pooling_and_its_double_backward_keeps_nhwc():
    # avg_pool2d's own double backward adds an NCHW zero gradient that turned the critic's NHWC
    # gradients NCHW under the gradient penalty: leaky ReLU's backward then mixed layouts
    # (~30x slower on CPU; the 64 px demo step 6-10% slower in all).
    x = torch.randn(2, 4, 6, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    assert torch.equal(downscale2d(x), F.avg_pool2d(x, 2))
    assert torch.equal(downscale2d(x[..., :5]), F.avg_pool2d(x[..., :5], 2))  # odd: floored
    leaf = x.clone().requires_grad_()
    assert torch.autograd.gradgradcheck(downscale2d, (leaf,))

    def penalty_backward(pool):  # a gradient penalty's shape: the norm of a gradient, backwards
        leaf.grad = None
        grad, = torch.autograd.grad(pool(F.leaky_relu(leaf * 1.5, 0.2)).square().sum(), leaf,
                                    create_graph=True)
        grad.square().sum().backward()
        return leaf.grad

    assert _layout_mixing_ops(lambda: penalty_backward(downscale2d)) == []
    torch.testing.assert_close(penalty_backward(downscale2d),
                               penalty_backward(lambda h: F.avg_pool2d(h, 2)))


def test_pixelnorm_on_nhwc_is_the_formula_without_mixing_layouts():
    norm = ganzoo.registry("normalizers").get("pixelnorm")()
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64) * 3
    nhwc = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = norm(nhwc)
    torch.testing.assert_close(out, x / torch.sqrt(x.square().mean(1, keepdim=True) + 1e-8))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradgradcheck(norm, (nhwc,))
    assert _layout_mixing_ops(lambda: norm(nhwc).mul(torch.randn_like(nhwc)).sum().backward()) == []


# --- the model ---------------------------------------------------------------------------------

def test_default_widths_and_parameter_count_follow_table_2():
    model = build(resolution=1024)
    g, d = model.generator, model.discriminator
    assert [conv.out_channels for conv in g.to_rgb] == [3] * 9
    assert [conv.in_channels for conv in g.to_rgb] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert [conv.out_channels for conv in d.from_rgb] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert model.latent_dim == 512
    # Appendix A.1, table 2: 23.1M trainable parameters in each network.
    for net in (g, d):
        assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(23.1, abs=0.05)


def test_gains_follow_the_paper():
    model = build(resolution=16, **TINY)
    g, d = model.generator, model.discriminator
    assert g.dense.gain == pytest.approx(math.sqrt(2) / 4)
    assert all(conv.gain == 1.0 for conv in g.to_rgb)
    assert d.out.gain == 1.0 and d.out.out_features == 1
    other = [m for net in (g, d) for m in net.modules()
             if hasattr(m, "gain") and m is not g.dense and m is not d.out
             and not any(m is t for t in g.to_rgb)]
    assert other and all(m.gain == pytest.approx(math.sqrt(2)) for m in other)


def test_shapes_at_every_resolution_up_to_1024():
    # Mid-fade (alpha 0.5) runs both the old and the new layers of each resolution.
    alpha = 0.5
    torch.manual_seed(0)
    model = build(resolution=1024, latent_dim=4, fmap_base=16, fmap_max=4, mbstd_group_size=2)
    g, d = model.generator, model.discriminator
    z = model.sample_latents(2)
    for res in [4, 8, 16, 32, 64, 128, 256, 512, 1024]:
        a = 1.0 if res == 4 else alpha
        g.set_growth(res, a)
        d.set_growth(res, a)
        with torch.no_grad():
            images = g(z)
            assert images.shape == (2, 3, res, res)
            assert d(images).shape == (2,)


@pytest.mark.parametrize("resolution", [8, 32, 256])
def test_built_at_the_target_resolution_by_default(resolution):
    model = build(resolution=resolution, **TINY)
    images = model.generator(model.sample_latents(4))
    assert images.shape == (4, 3, resolution, resolution)
    assert model.discriminator(images).shape == (4,)


def test_grayscale_and_labels_are_accepted_and_ignored():
    torch.manual_seed(0)
    model = build(resolution=8, channels=1, label_dim=5, **TINY)
    z, labels = model.sample_latents(4), torch.ones(4, 5)
    x = model.generator(z, labels)
    assert x.shape == (4, 1, 8, 8)
    assert torch.equal(x, model.generator(z))
    assert torch.equal(model.discriminator(x, labels), model.discriminator(x))


@pytest.mark.parametrize("resolution", [4, 2048, 48, 64.0, True, "64"])
def test_bad_resolution_is_a_user_error(resolution):
    with pytest.raises(ganzoo.UserError, match="resolution"):
        build(resolution=resolution)


@pytest.mark.parametrize("param, value", [("latent_dim", 0), ("fmap_base", 0), ("fmap_max", 1.5),
                                          ("channels", 0), ("label_dim", -1),
                                          ("mbstd_group_size", -1), ("fmap_decay", -1.0),
                                          ("use_pixelnorm", 1), ("normalize_latents", "yes")])
def test_bad_params_are_user_errors(param, value):
    with pytest.raises(ganzoo.UserError, match=param):
        build(resolution=8, **{param: value})


def test_set_growth_validates():
    g = build(resolution=16, **TINY).generator
    for res, alpha in [(32, 1.0), (2, 1.0), (12, 1.0), (8, 1.5), (8, -0.1), (4, 0.5)]:
        with pytest.raises(ganzoo.UserError):
            g.set_growth(res, alpha)


def test_discriminator_rejects_images_of_another_size():
    d = build(resolution=16, **TINY).discriminator
    d.set_growth(8, 1.0)
    with pytest.raises(ValueError, match="8x8"):
        d(torch.randn(4, 3, 16, 16))


def test_pixelnorm_follows_every_generator_conv_and_latents_are_normalized():
    torch.manual_seed(0)
    model = build(resolution=16, **TINY)
    seen = []
    norm_type = type(ganzoo.make_normalizer("pixelnorm", 1))
    for m in model.generator.modules():
        if isinstance(m, norm_type):
            m.register_forward_hook(lambda mod, inp, out: seen.append(out))
    model.generator(model.sample_latents(4) * 7.0)
    # latents, dense, 4x4 conv, then two convs at 8x8 and at 16x16
    assert len(seen) == 7
    for out in seen:
        torch.testing.assert_close(out.square().mean(dim=1), torch.ones_like(out[:, 0]))
    z = model.sample_latents(4)
    torch.testing.assert_close(model.generator(z), model.generator(z * 5.0))  # on the sphere


def test_switches_turn_features_off():
    torch.manual_seed(0)
    norm_type = type(ganzoo.make_normalizer("pixelnorm", 1))
    plain = build(resolution=8, use_pixelnorm=False, normalize_latents=False,
                  mbstd_group_size=0, **TINY)
    assert not any(isinstance(m, norm_type) for m in plain.generator.modules())
    assert plain.discriminator.mbstd is None
    assert plain.discriminator(torch.randn(3, 3, 8, 8)).shape == (3,)  # any batch size


# --- growth: the fade-in is continuous (section 2, figure 2) ------------------------------------

def _grown(resolution: int = 32):
    torch.manual_seed(0)
    model = build(resolution=resolution, **TINY)
    with torch.no_grad():  # non-zero biases, so no path is trivially zero
        for p in model.generator.parameters():
            if p.dim() == 1:
                p.normal_()
        for p in model.discriminator.parameters():
            if p.dim() == 1:
                p.normal_()
    return model


@pytest.mark.parametrize("res", [8, 16, 32])
def test_generator_fade_starts_at_the_upscaled_previous_output(res):
    model = _grown()
    g, z = model.generator, model.sample_latents(4)
    with torch.no_grad():
        g.set_growth(res // 2, 1.0)
        before = g(z)
        g.set_growth(res, 0.0)
        start = g(z)
        assert torch.equal(start, upscale_nearest(before))
        g.set_growth(res, 1.0)
        end = g(z)
        g.set_growth(res, 0.3)
        torch.testing.assert_close(g(z), start + 0.3 * (end - start))
        g.set_growth(res, 1e-6)
        assert (g(z) - start).abs().max() < 1e-4  # continuous in alpha


@pytest.mark.parametrize("res", [8, 16, 32])
def test_discriminator_fade_starts_at_the_previous_critic_on_pooled_images(res):
    model = _grown()
    d = model.discriminator
    x = torch.randn(4, 3, res, res)
    with torch.no_grad():
        d.set_growth(res // 2, 1.0)
        before = d(F.avg_pool2d(x, 2))
        d.set_growth(res, 0.0)
        assert torch.equal(d(x), before)
        d.set_growth(res, 1e-6)
        assert (d(x) - before).abs().max() < 1e-3


@pytest.mark.parametrize("res", [8, 32])
def test_which_layers_matter_at_each_end_of_a_fade(res):
    # alpha = 0: only the old path counts (the new block and its toRGB / fromRGB don't);
    # alpha = 1: only the new path (the previous toRGB / fromRGB no longer do).
    model = _grown()
    g, d = model.generator, model.discriminator
    k = int(math.log2(res)) - 2
    z, x = model.sample_latents(4), torch.randn(4, 3, res, res)

    def outputs(alpha):
        g.set_growth(res, alpha)
        d.set_growth(res, alpha)
        with torch.no_grad():
            return g(z), d(x)

    def perturbed(modules, alpha):
        saved = [p.detach().clone() for m in modules for p in m.parameters()]
        with torch.no_grad():
            for m in modules:
                for p in m.parameters():
                    p.add_(1.0)
        try:
            return outputs(alpha)
        finally:
            with torch.no_grad():
                for p, s in zip([p for m in modules for p in m.parameters()], saved):
                    p.copy_(s)

    for alpha, unused_g, unused_d in [
            (0.0, [g.blocks[k - 1], g.to_rgb[k]], [d.blocks[k - 1], d.from_rgb[k]]),
            (1.0, [g.to_rgb[k - 1]], [d.from_rgb[k - 1]])]:
        base_g, base_d = outputs(alpha)
        assert torch.equal(perturbed(unused_g, alpha)[0], base_g)
        assert torch.equal(perturbed(unused_d, alpha)[1], base_d)
    used_g, used_d = perturbed([g.to_rgb[k - 1], d.from_rgb[k - 1]], 0.5)
    base_g, base_d = outputs(0.5)
    assert not torch.equal(used_g, base_g) and not torch.equal(used_d, base_d)


def test_unused_layers_do_not_run():
    model = _grown(64)
    g, d = model.generator, model.discriminator
    ran = set()
    for net in (g, d):
        for name, m in net.named_modules():
            if name and not list(m.children()):
                m.register_forward_hook(lambda mod, i, o, tag=(id(net), name): ran.add(tag))
    g.set_growth(16, 1.0)
    d.set_growth(16, 1.0)
    d(g(model.sample_latents(4)))
    g_ran = {name for net_id, name in ran if net_id == id(g)}
    d_ran = {name for net_id, name in ran if net_id == id(d)}
    # Stable at 16x16 (level 2): blocks 0-1 and toRGB 2 in G; fromRGB 2 and blocks 0-1 in D.
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in g_ran if n.startswith(("blocks", "to_rgb"))} \
        == {"blocks.0", "blocks.1", "to_rgb.2"}
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in d_ran if n.startswith(("blocks", "from_rgb"))} \
        == {"blocks.0", "blocks.1", "from_rgb.2"}


# --- the progressive schedule --------------------------------------------------------------------

def official_lod(kimg, target, start=4, stabilize=600.0, fade=600.0):
    """The official TrainingSchedule's level of detail, transcribed."""
    phase_dur = stabilize + fade
    phase_idx = int(math.floor(kimg / phase_dur)) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur
    lod = math.log2(target) - math.floor(math.log2(start)) - phase_idx
    if fade > 0:
        lod -= max(phase_kimg - stabilize, 0.0) / fade
    return max(lod, 0.0)


@pytest.mark.parametrize("kimg, resolution, alpha, phase", [
    (0.0, 4, 1.0, 0), (599.9, 4, 1.0, 0), (600.0, 4, 1.0, 0),  # stabilize at 4x4 first
    (750.0, 8, 0.25, 1), (900.0, 8, 0.5, 1), (1200.0, 8, 1.0, 2), (1500.0, 8, 1.0, 2),
    (1950.0, 16, 0.25, 3), (2400.0, 16, 1.0, 4), (3300.0, 32, 0.5, 5), (4500.0, 64, 0.5, 7),
    (4800.0, 64, 1.0, 8), (1e6, 64, 1.0, 8)])
def test_schedule_by_hand(kimg, resolution, alpha, phase):
    state = schedule(64).state(kimg)  # defaults: 600 kimg stabilize + 600 kimg fade
    assert (state.resolution, state.phase) == (resolution, phase)
    assert state.alpha == pytest.approx(alpha, abs=1e-12)
    assert state.batch_size == 16 and state.lr is None and state.reset_optimizers


@pytest.mark.parametrize("target, start, stabilize, fade", [(64, 4, 600, 600), (1024, 4, 800, 800),
                                                            (256, 8, 30, 10), (32, 4, 5, 0)])
def test_schedule_matches_the_official_formula(target, start, stabilize, fade):
    s = schedule(target, start_resolution=start, stabilize_kimg=stabilize, fade_kimg=fade)
    phase_dur = stabilize + fade
    points = [i * 0.37 * phase_dur / 10 for i in range(300)]
    points += [k * phase_dur + off for k in range(10) for off in (0.0, stabilize, stabilize + 1e-3)]
    for kimg in points:
        lod = official_lod(kimg, target, start, stabilize, fade)
        state = s.state(kimg)
        assert state.resolution == 2 ** (int(math.log2(target)) - math.floor(lod)), kimg
        assert state.alpha == pytest.approx(1.0 - (lod - math.floor(lod)), abs=1e-9), kimg


def test_phase_changes_exactly_with_resolution_or_fading():
    s = schedule(32, stabilize_kimg={"4": 1.0, "8": 2.0, "16": 0.5}, fade_kimg={8: 1.5, 16: 1.0, 32: 2.0})
    previous = None
    phases = set()
    for i in range(1300):
        state = s.state(i * 0.01)
        key = (state.resolution, state.fading)
        if previous is not None:
            assert (state.phase != previous[0]) == (key != previous[1]), i
        previous = (state.phase, key)
        phases.add(state.phase)
    assert phases == set(range(7))


def test_schedule_with_per_resolution_lengths_batch_sizes_and_lr():
    s = schedule(32, train_batch_size=8, stabilize_kimg={"4": 1.0, "8": 2.0, "16": 0.5},
                 fade_kimg={"8": 1.5, "16": 1.0, "32": 2.0},
                 batch_size={"4": 64, 8: 32, "64": 4}, lr={"16": 0.002, "32": 0.003})
    # 4 stable [0, 1); fade 8 [1, 2.5); 8 stable [2.5, 4.5); fade 16 [4.5, 5.5);
    # 16 stable [5.5, 6); fade 32 [6, 8); 32 stable from 8.
    expect = [(0.5, 4, 1.0, 64, None), (1.0, 4, 1.0, 64, None), (1.75, 8, 0.5, 32, None),
              (3.0, 8, 1.0, 32, None), (5.0, 16, 0.5, 8, 0.002), (5.75, 16, 1.0, 8, 0.002),
              (7.5, 32, 0.75, 8, 0.003), (100.0, 32, 1.0, 8, 0.003)]
    for kimg, res, alpha, batch, lr in expect:
        state = s.state(kimg)
        assert (state.resolution, state.batch_size, state.lr) == (res, batch, lr), kimg
        assert state.alpha == pytest.approx(alpha), kimg


def test_the_lr_decay_scales_the_last_kimg_to_zero_and_changes_nothing_else():
    plain = schedule(32, stabilize_kimg=2, fade_kimg=2, lr={"32": 0.003})
    s = schedule(32, stabilize_kimg=2, fade_kimg=2, lr={"32": 0.003}, decay_start_kimg=12,
                 decay_end_kimg=16)
    for kimg, scale in [(0.0, 1.0), (11.0, 1.0), (12.0, 1.0), (13.0, 0.75), (15.0, 0.25),
                        (16.0, 0.0), (99.0, 0.0)]:
        state = s.state(kimg)
        assert state.lr_scale == pytest.approx(scale), kimg
        assert attrs.evolve(state, lr_scale=1.0) == plain.state(kimg), kimg  # nothing else moves


def test_schedule_is_a_pure_function_of_kimg():
    s = schedule(64, stabilize_kimg=3, fade_kimg=2)
    points = [0.0, 7.3, 2.9, 7.3, 100.0, 0.0, 4.1]
    assert [s.state(k) for k in points] == [schedule(64, stabilize_kimg=3, fade_kimg=2).state(k)
                                            for k in reversed(points)][::-1]


@pytest.mark.parametrize("params, match", [
    (dict(start_resolution=6), "start_resolution"), (dict(start_resolution=128), "target"),
    (dict(stabilize_kimg=-1), "stabilize_kimg"), (dict(fade_kimg="600"), "fade_kimg"),
    (dict(stabilize_kimg=0, fade_kimg=0), "never grow"),
    (dict(stabilize_kimg={"4": 1, "8": 1}), "lacks resolution"),
    (dict(batch_size={"12": 4}), "12"), (dict(batch_size={"8": 0}), r"batch_size\[8\]"),
    (dict(lr={"8": -1.0}), r"lr\[8\]"), (dict(lr=0.1), "table"),
    (dict(reset_optimizers="yes"), "reset_optimizers")])
def test_bad_schedule_params_are_user_errors(params, match):
    with pytest.raises(ganzoo.UserError, match=match):
        schedule(64, **params)


def test_schedule_ignores_table_entries_beyond_the_target():
    s = schedule(16, stabilize_kimg={"4": 1, "8": 1, "16": 1, "64": 9}, batch_size={"128": 2})
    assert s.state(1e3).resolution == 16 and s.state(1e3).batch_size == 16


def test_prepare_real_fades_between_resolutions():
    torch.manual_seed(0)
    s = schedule(64)
    real = torch.rand(2, 3, 8, 8) * 2 - 1
    state = s.state(600.0 + 0.25 * 600.0)  # fading in 8x8, alpha 0.25
    assert (state.resolution, state.alpha) == (8, 0.25)
    low = upscale_nearest(F.avg_pool2d(real, 2))
    torch.testing.assert_close(s.prepare_real(real, state), real + 0.75 * (low - real))
    stable = s.state(1300.0)
    assert s.prepare_real(real, stable) is real
    # Near the start of a fade D sees the half-resolution images, near its end the full ones.
    almost = attrs_evolve(state, alpha=1e-9)
    torch.testing.assert_close(s.prepare_real(real, almost), low)


def attrs_evolve(state, **changes):
    import attrs

    return attrs.evolve(state, **changes)


# --- provenance --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, name", [("blocks", "equalized_conv2d"), ("blocks", "equalized_linear"),
                                        ("blocks", "minibatch_stddev"), ("normalizers", "pixelnorm"),
                                        ("schedules", "progressive"), ("models", "progan")])
def test_entries_carry_provenance(kind, name):
    entry = ganzoo.registry(kind).entry(name)
    assert entry.plugin == "progan"
    assert entry.distribution == "ganzoo"
    assert entry.summary and "\n" not in entry.summary
