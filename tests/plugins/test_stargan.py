"""The StarGAN plugin, exercised only through ganzoo's public registries (and its datasets)."""

from __future__ import annotations

import json
import random

import ganzoo
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ganzoo.cli import main
from ganzoo.recipe import load_recipe

SMALL = dict(conv_dim=4, g_repeat_num=1)


def build(**params) -> ganzoo.GANModel:
    return ganzoo.registry("models").get("stargan")(**params)


def loss(name: str, **params):
    return ganzoo.registry("losses").get(name)(**params)


def block(name: str, *args, **kwargs) -> nn.Module:
    return ganzoo.registry("blocks").get(name)(*args, **kwargs)


def dataset(name: str, **params):
    return ganzoo.registry("datasets").get(name)(**params)


class Ctx:
    """A stand-in for ganzoo.LossContext with fixed tensors."""

    def __init__(self, **fields):
        defaults = dict(real=None, fake=None, real_labels=None, target_labels=None,
                        real_class_logits=None, fake_class_logits=None, generator=None)
        self.__dict__.update(defaults, **fields)


# --- blocks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 5])
def test_label_concat_replicates_labels_exactly(size):
    x = torch.randn(3, 2, size, size)
    labels = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, -2.0], [0.25, 0.0, 1.0]])
    out = block("label_concat")(x, labels)
    assert out.shape == (3, 5, size, size)
    assert torch.equal(out[:, :2], x)
    for n in range(3):
        for c in range(3):
            assert torch.equal(out[n, 2 + c], torch.full((size, size), labels[n, c].item()))


def test_class_head_maps_the_final_map_to_logits():
    head = block("class_head", 16, 5, 2)
    assert isinstance(head, nn.Conv2d) and head.bias is None and head.kernel_size == (2, 2)
    assert head(torch.randn(4, 16, 2, 2)).shape == (4, 5)
    with pytest.raises(ValueError, match="2x2"):
        head(torch.randn(4, 16, 4, 4))


# --- model -----------------------------------------------------------------------------------

@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_shapes(resolution):
    torch.manual_seed(0)
    model = build(resolution=resolution, label_dim=5, **SMALL)
    assert model.translates and model.latent_dim == 0
    x = torch.rand(2, 3, resolution, resolution) * 2 - 1
    y = model.generator(x, torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 1]]))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    scores, logits = model.discriminator(y)
    assert scores.shape == (2,) and logits.shape == (2, 5)
    convs = [m for m in model.generator.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 3 + 5 and convs[0].kernel_size == (7, 7)


def test_architecture_follows_the_paper():
    model = build(resolution=128, label_dim=5)
    G, D = model.generator, model.discriminator
    g_convs = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [m.out_channels for m in g_convs] == [64, 128, 256] + [256] * 12 + [128, 64, 3]
    assert all(m.bias is None for m in g_convs)  # official: no biases in G
    norms = [m for m in G.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3 + 12 + 2 and all(m.affine and m.track_running_stats for m in norms)
    strided = [m for m in D.main if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in strided] == [64, 128, 256, 512, 1024, 2048]
    assert all(m.stride == (2, 2) and m.kernel_size == (4, 4) for m in strided)
    assert [m.negative_slope for m in D.main if isinstance(m, nn.LeakyReLU)] == [0.01] * 6
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in D.modules())
    assert D.conv1.kernel_size == (3, 3) and D.conv1.bias is None
    assert D.conv2.kernel_size == (2, 2) and D.conv2.bias is None


def test_scores_are_the_mean_of_the_patch_map():
    torch.manual_seed(0)
    model = build(resolution=64, label_dim=3, **SMALL)
    x = torch.randn(4, 3, 64, 64)
    patches = model.discriminator.patch_scores(x)
    assert patches.shape == (4, 1, 2, 2)
    assert torch.allclose(model.discriminator(x)[0], patches.mean(dim=(1, 2, 3)))


def test_generator_uses_instance_statistics_in_eval_mode():
    torch.manual_seed(0)
    G = build(resolution=32, label_dim=2, **SMALL).generator
    x, c = torch.randn(3, 3, 32, 32), torch.rand(3, 2)
    train_out = G(x, c)
    stats = {k: v.clone() for k, v in G.state_dict().items() if "running" in k}
    G.eval()
    assert torch.allclose(G(x, c), train_out)  # not the running averages
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in stats.items())  # left untouched
    G.train()
    G(x, c)
    assert not all(torch.equal(v, G.state_dict()[k]) for k, v in stats.items())  # tracked in training


def test_input_skip_makes_the_last_conv_a_change_to_the_input():
    torch.manual_seed(0)
    G = build(resolution=32, label_dim=2, input_skip=True, **SMALL).generator
    x, c = torch.rand(3, 3, 32, 32) * 1.9 - 0.95, torch.rand(3, 2)
    last = [m for m in G.modules() if isinstance(m, nn.Conv2d)][-1]
    h = G.main[:-1](G.label_concat(x, c))
    assert torch.allclose(G(x, c), torch.tanh(h + torch.atanh(x)), atol=1e-6)
    with torch.no_grad():
        last.weight.zero_()
    assert torch.allclose(G(x, c), x, atol=1e-5)  # h = 0: the input itself
    G(x, c).sum().backward()
    assert last.weight.grad.abs().sum() > 0  # and it learns from there
    edge = torch.ones(1, 3, 32, 32)
    edge[..., :16] = -1.0
    assert torch.isfinite(G(edge, c[:1])).all()  # |x| = 1 is clamped, not atanh = inf


def test_input_skip_is_off_by_default_as_in_the_paper():
    torch.manual_seed(0)
    G = build(resolution=32, label_dim=2, **SMALL).generator
    x, c = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 2)
    assert not G.input_skip and torch.equal(G(x, c), G.main(G.label_concat(x, c)))


def test_mask_dims_sizes_the_class_head_not_the_generator_input():
    model = build(resolution=32, label_dim=7, mask_dims=2, **SMALL)
    convs = [m for m in model.generator.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 3 + 7
    assert model.discriminator(torch.randn(2, 3, 32, 32))[1].shape == (2, 5)


@pytest.mark.parametrize("params, match", [
    (dict(resolution=48, label_dim=5), "resolution"), (dict(resolution=8, label_dim=5), "resolution"),
    (dict(resolution=64, label_dim=0), "labels"), (dict(resolution=64, label_dim=2, mask_dims=2), "labels"),
    (dict(resolution=64, label_dim=5, repeat_num=7), "repeat_num"),
    (dict(resolution=64, label_dim=5, conv_dim=0), "conv_dim")])
def test_bad_params_are_user_errors(params, match):
    with pytest.raises(ganzoo.UserError, match=match):
        build(**params)


def test_default_d_depth():
    for resolution, depth, size in [(16, 3, 2), (32, 4, 2), (128, 6, 2), (256, 6, 4)]:
        D = build(resolution=resolution, label_dim=1, **SMALL).discriminator
        assert sum(isinstance(m, nn.Conv2d) for m in D.main) == depth
        assert D.patch_scores(torch.zeros(1, 3, resolution, resolution)).shape[-1] == size


# --- losses ----------------------------------------------------------------------------------

def test_domain_classification_multi_label_formula():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 0.8, -2.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    expected = sum(-(t * torch.log(torch.sigmoid(x)) + (1 - t) * torch.log(1 - torch.sigmoid(x)))
                   for x, t in zip(logits.flatten(), labels.flatten())) / 2
    term = loss("domain_classification")
    d = term.discriminator_loss(Ctx(real_class_logits=logits, real_labels=labels))
    g = term.generator_loss(Ctx(fake_class_logits=logits, target_labels=labels))
    assert torch.allclose(d, expected) and torch.allclose(g, expected)
    official = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / 2
    assert torch.allclose(d, official)


def test_domain_classification_single_label_formula():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 0.8, -2.0]])
    labels = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    p = torch.softmax(logits, dim=1)
    expected = -(torch.log(p[0, 2]) + torch.log(p[1, 1])) / 2
    term = loss("domain_classification", kind="single_label")
    assert torch.allclose(term.discriminator_loss(Ctx(real_class_logits=logits, real_labels=labels)),
                          expected)


def test_domain_classification_applies_each_samples_mask():
    # Two parts: 2 multi-label attributes, then 3 one-hot domains; mask over the two datasets.
    logits = torch.tensor([[1.0, -2.0, 0.3, 0.1, -0.4],
                           [0.5, 0.5, 2.0, -1.0, 0.0],
                           [-1.0, 3.0, 0.2, 0.2, 0.9]])
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],   # dataset 1
                           [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0],   # dataset 2, domain 1
                           [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])  # dataset 1

    def bce(x, t):
        return F.binary_cross_entropy_with_logits(x, t, reduction="sum")

    def ce(x, k):
        return -torch.log_softmax(x, dim=0)[k]

    expected = (bce(logits[0, :2], labels[0, :2]) + ce(logits[1, 2:], 1)
                + bce(logits[2, :2], labels[2, :2])) / 3
    term = loss("domain_classification", kind=["multi_label", "single_label"], parts=[2, 3])
    assert torch.allclose(term.discriminator_loss(Ctx(real_class_logits=logits, real_labels=labels)),
                          expected)
    # Unknown parts get no gradient: dataset 1's samples do not train the domain logits.
    logits.requires_grad_(True)
    term.discriminator_loss(Ctx(real_class_logits=logits, real_labels=labels)).backward()
    assert torch.all(logits.grad[[0, 2], 2:] == 0) and torch.all(logits.grad[1, :2] == 0)
    # One kind for every part.
    both = loss("domain_classification", parts=[2, 3])
    value = both.discriminator_loss(Ctx(real_class_logits=logits.detach(), real_labels=labels))
    expected_multi = (bce(logits[0, :2], labels[0, :2]) + bce(logits[1, 2:], labels[1, 2:5])
                      + bce(logits[2, :2], labels[2, :2])) / 3
    assert torch.allclose(value, expected_multi)


def test_domain_classification_errors():
    term = loss("domain_classification")
    with pytest.raises(ganzoo.UserError, match="parts"):
        term.discriminator_loss(Ctx(real_class_logits=torch.zeros(2, 3), real_labels=torch.zeros(2, 5)))
    with pytest.raises(ganzoo.UserError, match="class head"):
        term.discriminator_loss(Ctx(real_labels=torch.zeros(2, 3)))
    with pytest.raises(ganzoo.UserError, match="kind"):
        loss("domain_classification", kind="softmax")
    with pytest.raises(ganzoo.UserError, match="parts"):
        loss("domain_classification", kind=["multi_label", "single_label"])


def test_cycle_reconstruction_is_the_l1_of_the_round_trip():
    real = torch.randn(2, 3, 4, 4)
    fake = torch.randn(2, 3, 4, 4)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    calls = []

    def generator(images, c):  # a stub "translation": shifts each image by its first label
        calls.append((images, c))
        return images + c[:, :1, None, None]

    term = loss("cycle_reconstruction")
    assert not hasattr(term, "discriminator_loss")
    value = term.generator_loss(Ctx(real=real, fake=fake, real_labels=labels, generator=generator))
    assert calls[0][0] is fake and calls[0][1] is labels  # G(G(x, c_trg), c_org)
    assert torch.allclose(value, (real - (fake + labels[:, :1, None, None])).abs().mean())


def test_recipe_gradient_penalty_equals_the_official_one():
    """lambda_gp = 160, target = 1/4 on patch-mean scores == the official lambda 10 on the patch sum."""
    torch.manual_seed(0)
    D = build(resolution=32, label_dim=3, **SMALL).discriminator
    real, fake = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    torch.manual_seed(1)
    alpha = torch.rand(4, 1, 1, 1)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out_src = D.patch_scores(x_hat)
    (grad,) = torch.autograd.grad(out_src, x_hat, torch.ones_like(out_src))
    official = 10 * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    torch.manual_seed(1)
    ctx = ganzoo.LossContext(real=real, fake=fake, discriminator=D, phase="discriminator")
    ours = loss("gradient_penalty", lambda_gp=160.0, target=0.25).discriminator_loss(ctx)
    assert torch.allclose(ours, official, rtol=1e-4)


# --- joint dataset (mask vector) -------------------------------------------------------------

HAIR = ["black_hair", "blond_hair", "brown_hair"]


def joint(**extra):
    return dataset("joint", resolution=16, datasets=[
        {"dataset": "toyfaces", "size": 12, "attributes": HAIR},
        {"dataset": "toyfaces", "size": 8, "seed": 1, "attributes": ["male", "young"]}], **extra)


def test_joint_dataset_label_layout():
    data = joint()
    assert len(data) == 20 and data.resolution == 16
    assert data.attribute_names == HAIR + ["male", "young", "mask:toyfaces", "mask:toyfaces_2"]
    assert data.attribute_groups == [HAIR, ["mask:toyfaces", "mask:toyfaces_2"]]
    first = dataset("toyfaces", resolution=16, size=12, attributes=HAIR)
    second = dataset("toyfaces", resolution=16, size=8, seed=1, attributes=["male", "young"])
    for i in (0, 11):
        image, labels = data[i]
        assert torch.equal(image, first[i][0])
        assert torch.equal(labels, torch.cat([first[i][1], torch.zeros(2), torch.tensor([1.0, 0.0])]))
    for i in (0, 7):
        image, labels = data[12 + i]
        assert torch.equal(image, second[i][0])
        assert torch.equal(labels, torch.cat([torch.zeros(3), second[i][1], torch.tensor([0.0, 1.0])]))
    image, labels = data.at_resolution(8)[12]
    assert image.shape == (3, 8, 8) and labels[-1] == 1


def test_joint_dataset_trains_the_right_class_logits():
    """The model's mask_dims and the loss's parts fit a joint dataset; batches may mix datasets."""
    data = joint()
    batch = torch.stack([data[i][1] for i in (0, 13, 5, 19)])
    model = build(resolution=16, label_dim=data.label_dim, mask_dims=data.mask_dims, **SMALL)
    images = torch.stack([data[i][0] for i in (0, 13, 5, 19)]).float() / 127.5 - 1
    fake = model.generator(images, batch.flip(0))
    logits = model.discriminator(fake)[1]
    assert logits.shape == (4, 5)
    term = loss("domain_classification", kind=["single_label", "multi_label"], parts=data.parts)
    value = term.generator_loss(Ctx(fake_class_logits=logits, target_labels=batch))
    assert torch.isfinite(value)


def test_joint_dataset_errors():
    with pytest.raises(ganzoo.UserError, match="disjoint"):
        dataset("joint", resolution=16, datasets=[
            {"dataset": "toyfaces", "size": 4, "attributes": ["male"]},
            {"dataset": "toyfaces", "size": 4, "attributes": ["male", "young"]}])
    with pytest.raises(ganzoo.UserError, match=r"datasets\[1\]"):
        dataset("joint", resolution=16, datasets=[
            {"dataset": "toyfaces", "size": 4, "attributes": ["male"]},
            {"dataset": "toyfaces", "size": 4, "attributes": ["bald"]}])
    with pytest.raises(ganzoo.UserError, match="at least two"):
        dataset("joint", resolution=16, datasets=[{"dataset": "toyfaces", "size": 4}])


JOINT_RECIPE = """
[run]
out_dir = "{out}"
device = "cpu"
[data]
dataset = "joint"
resolution = 16
[[data.datasets]]
dataset = "toyfaces"
name = "hair"
size = 64
attributes = ["black_hair", "blond_hair", "brown_hair"]
[[data.datasets]]
dataset = "toyfaces"
seed = 1
size = 32
attributes = ["male", "young"]
[model]
name = "stargan"
conv_dim = 4
g_repeat_num = 1
mask_dims = 2
[[losses]]
name = "wasserstein"
[[losses]]
name = "gradient_penalty"
[[losses]]
name = "domain_classification"
kind = ["single_label", "multi_label"]
parts = [3, 2]
[[losses]]
name = "cycle_reconstruction"
weight = 10.0
[train]
kimg = 0.048
batch_size = 8
n_critic = 2
log_kimg = 0.016
sample_kimg = 0.048
snapshot_kimg = 0.048
sample_grid = 4
"""


def test_joint_dataset_trains_end_to_end(tmp_path):
    recipe = tmp_path / "joint.toml"
    recipe.write_text(JOINT_RECIPE.format(out=(tmp_path / "run").as_posix()))
    assert main(["run", str(recipe)]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3
    assert all(r["D/domain_classification"] > 0 and r["G/cycle_reconstruction"] > 0 for r in records)


# --- celeba ----------------------------------------------------------------------------------

NAMES = ["5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def fake_celeba(root, n: int = 2100, images: int = 0, folder: str = "img_align_celeba"):
    """A CelebA look-alike: the attribute file in the real format, and the first `images` JPEGs."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    lines = [str(n), " ".join(NAMES)]
    for i in range(n):
        values = " ".join(f"{rng.choice([-1, 1]):2d}" for _ in NAMES)
        lines.append(f"{i + 1:06d}.jpg {values}")
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / folder).mkdir(exist_ok=True)
    for i in range(images):
        Image.new("RGB", (178, 218), (i * 40 % 256, 100, 200)).save(root / folder / f"{i + 1:06d}.jpg")
    return lines[2:]


def test_celeba_split_labels_and_attribute_order(tmp_path):
    rows = fake_celeba(tmp_path / "celeba", images=1)
    attributes = ["Young", "Black_Hair", "Male"]
    train = dataset("celeba", root=str(tmp_path / "celeba"), resolution=16, attributes=attributes)
    test = dataset("celeba", root=str(tmp_path / "celeba"), resolution=16, attributes=attributes,
                   split="test")
    assert (len(test), len(train)) == (1999, 101)  # the official `(i+1) < 2000` rule
    assert train.attribute_names == attributes and train.attribute_groups == []
    state = random.getstate()  # the split is exactly the official random.seed(1234); shuffle
    try:
        random.seed(1234)
        shuffled = list(rows)
        random.shuffle(shuffled)
    finally:
        random.setstate(state)
    assert test.files == [r.split()[0] for r in shuffled[:1999]]
    assert train.files == [r.split()[0] for r in shuffled[1999:]]
    for files, data in ((test.files, test), (train.files, train)):
        for k in (0, 50, len(files) - 1):
            values = dict(zip(NAMES, shuffled[[r.split()[0] for r in shuffled].index(files[k])].split()[1:]))
            assert data.labels[k].tolist() == [1.0 if values[a] == "1" else 0.0 for a in attributes]
    assert set(torch.unique(train.labels).tolist()) == {0.0, 1.0}
    assert train.labels.dtype == torch.float32


def test_celeba_loads_images_and_defaults(tmp_path):
    fake_celeba(tmp_path / "celeba", n=2003, images=2003, folder="images")
    data = dataset("celeba", root=str(tmp_path / "celeba"), resolution=16)
    assert data.attribute_names == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    assert data.attribute_groups == [["Black_Hair", "Blond_Hair", "Brown_Hair"]]
    image, labels = data[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.uint8 and labels.shape == (5,)


def test_celeba_missing_data_is_a_user_error(tmp_path):
    with pytest.raises(ganzoo.UserError, match="does not exist.*mmlab"):
        dataset("celeba", root=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ganzoo.UserError, match="list_attr_celeba.txt.*not found"):
        dataset("celeba", root=str(tmp_path / "empty"))
    fake_celeba(tmp_path / "celeba", n=2001, images=0)
    with pytest.raises(ganzoo.UserError, match="not found"):
        dataset("celeba", root=str(tmp_path / "celeba"))
    with pytest.raises(ganzoo.UserError, match="Blond_Hairr.*did you mean 'Blond_Hair'"):
        dataset("celeba", root=str(tmp_path / "celeba"), attributes=["Blond_Hairr"])


def test_celeba_missing_data_exits_with_code_2(tmp_path, capsys):
    code = main(["run", "recipes/stargan_celeba.toml", "--set", f'run.out_dir="{tmp_path / "run"}"',
                 "--set", f'data.root="{tmp_path / "missing"}"'])
    assert code == 2
    assert "celeba" in capsys.readouterr().err


# --- recipes and a short run -----------------------------------------------------------------

def test_recipes_load():
    for path in ("recipes/stargan_celeba.toml", "recipes/stargan_toyfaces.toml"):
        recipe = load_recipe(path)
        assert recipe.model.name == "stargan"
        assert [(l.name, l.weight) for l in recipe.losses] == [
            ("wasserstein", 1.0), ("gradient_penalty", 1.0), ("domain_classification", 1.0),
            ("cycle_reconstruction", 10.0)]
    celeba = load_recipe("recipes/stargan_celeba.toml")
    assert celeba.train.kimg == 200_000 * 16 / 1000 and celeba.train.n_critic == 5
    assert celeba.schedule.params == {"decay_start_kimg": 1600, "decay_end_kimg": 3200}


def test_short_toyfaces_run_learns_to_reconstruct(tmp_path):
    """The toyfaces recipe, shrunk (16 px, tiny nets, one D step per G step; its own batch of 16):
    80 G steps on a CPU in ~30 s, over which G/cycle_reconstruction falls by ~25% (0.68-0.78 of its start, seeds 0-2)."""
    out = tmp_path / "run"
    code = main(["run", "recipes/stargan_toyfaces.toml", "--set", f'run.out_dir="{out}"',
                 "--set", 'run.device="cpu"', "--set", "data.size=256", "--set", "data.resolution=16",
                 "--set", "model.conv_dim=8", "--set", "model.g_repeat_num=1",
                 "--set", "train.n_critic=1", "--set", "train.kimg=1.28",
                 "--set", "train.log_kimg=0.128", "--set", "train.sample_kimg=1.28",
                 "--set", "train.snapshot_kimg=1.28", "--set", "train.sample_grid=4",
                 "--set", "eval.metrics=[]"])
    assert code == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    values = [r["G/cycle_reconstruction"] for r in records]
    assert len(values) == 10
    assert {"D/domain_classification", "G/domain_classification", "D/gradient_penalty",
            "D/wasserstein"} <= records[0].keys()
    first, last = sum(values[:3]) / 3, sum(values[-3:]) / 3
    assert last < 0.85 * first, values
    assert list((out / "samples").glob("*.png"))


def _translation_l1(tmp_path, name: str, kimg: float) -> dict:
    """End-of-run `translation` eval of the toyfaces recipe with tiny nets, at its own batch
    size (16) and resolution (32 px)."""
    out = tmp_path / name
    code = main(["run", "recipes/stargan_toyfaces.toml", "--set", f'run.out_dir="{out}"',
                 "--set", 'run.device="cpu"', "--set", "data.size=512",
                 "--set", "model.conv_dim=8", "--set", "model.g_repeat_num=1",
                 "--set", f"train.kimg={kimg}", "--set", f"train.log_kimg={kimg}",
                 "--set", f"train.sample_kimg={kimg}", "--set", f"train.snapshot_kimg={kimg}",
                 "--set", f"schedule.decay_start_kimg={kimg / 2}", "--set", f"schedule.decay_end_kimg={kimg}",
                 "--set", "train.sample_grid=4", "--set", "eval.num_images=60"])
    assert code == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return next(r for r in records if "translation/l1" in r)


def test_short_toyfaces_run_translates_closer_to_the_ground_truth(tmp_path):
    """The toyfaces recipe, shrunk in width, data and length only: after 100 G steps (~1 min)
    its translations of held-out faces are measurably closer to the rendered ground truth than
    after one step (an untrained G)."""
    untrained = _translation_l1(tmp_path, "untrained", 0.08)  # one iteration: 5 D steps, 1 G step
    trained = _translation_l1(tmp_path, "trained", 8.0)
    assert untrained["translation/l1_identity"] == trained["translation/l1_identity"]  # same faces
    assert trained["translation/l1"] < 0.85 * untrained["translation/l1"], (trained, untrained)
