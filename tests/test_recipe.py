"""Recipes: TOML loading, validation, `--set` overrides, writing back; and `construct`."""

from __future__ import annotations

import copy
import math
import textwrap
import tomllib

import ganzoo
import ganzoo.plugins
import pytest
from ganzoo.structure import construct
from ganzoo.recipe import (Recipe, apply_override, dumps_toml, load_recipe, parse_value,
                           recipe_from_dict, recipe_to_dict)

MINIMAL = {"data": {"resolution": 32}, "losses": [{"name": "bce"}]}


def minimal(**tables) -> dict:
    raw = copy.deepcopy(MINIMAL)
    raw.update(copy.deepcopy(tables))
    return raw


def with_value(dotted: str, value) -> dict:
    """MINIMAL with `dotted` (e.g. "optim.generator.lr", "losses.0.weight") set to `value`."""
    raw = minimal()
    *parents, last = dotted.split(".")
    node = raw
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[last] = value
    return raw


def user_error(raw: dict) -> str:
    with pytest.raises(ganzoo.UserError) as caught:
        recipe_from_dict(raw)
    message = str(caught.value)
    assert "\n" not in message, "user errors are one line"
    return message


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "recipe.toml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path
    return write


# --- defaults and the minimal recipe -----------------------------------------------------------

def test_minimal_recipe_gets_defaults():
    recipe = recipe_from_dict(minimal())
    assert isinstance(recipe, Recipe)
    assert recipe.data.resolution == 32
    assert recipe.losses[0].name == "bce" and recipe.losses[0].weight == 1.0
    assert recipe.losses[0].params == {}
    assert recipe.run.device == "auto" and recipe.run.precision == "fp32"
    assert recipe.optim.generator.betas == (0.5, 0.999)
    assert recipe.train.kimg == 100.0


def test_recipe_is_frozen():
    recipe = recipe_from_dict(minimal())
    with pytest.raises(Exception):
        recipe.train.kimg = 1.0  # type: ignore[misc]


def test_int_is_accepted_where_a_float_is_expected():
    recipe = recipe_from_dict(with_value("train.kimg", 2))
    assert recipe.train.kimg == 2.0 and isinstance(recipe.train.kimg, float)


# --- unknown keys ------------------------------------------------------------------------------

@pytest.mark.parametrize("dotted, typo, table, suggestion", [
    ("", "rn", "top level", "run"),
    ("", "trian", "top level", "train"),
    ("run", "sed", "[run]", "seed"),
    ("train", "kmig", "[train]", "kimg"),
    ("train", "batchsize", "[train]", "batch_size"),
    ("optim", "generatr", "[optim]", "generator"),
    ("optim.generator", "bets", "[optim.generator]", "betas"),
    ("optim.discriminator", "lrr", "[optim.discriminator]", "lr"),
    ("ema", "bta", "[ema]", "beta"),
])
def test_unknown_key_names_key_table_and_close_match(dotted, typo, table, suggestion):
    raw = with_value(f"{dotted}.{typo}" if dotted else typo, 1)
    message = user_error(raw)
    assert f"'{typo}'" in message
    assert table in message
    assert f"did you mean '{suggestion}'" in message


def test_unknown_key_without_close_match_lists_the_known_keys():
    message = user_error(with_value("ema.zzzzzz", 1))
    assert "'zzzzzz'" in message and "[ema]" in message
    assert "did you mean" not in message
    assert "beta" in message


# --- wrong types -------------------------------------------------------------------------------

@pytest.mark.parametrize("dotted, value", [
    ("train.batch_size", "64"),        # string for int
    ("train.batch_size", 64.0),        # float for int
    ("train.batch_size", True),        # bool for int
    ("run.seed", 1.5),
    ("train.kimg", "10"),              # string for float
    ("train.kimg", False),             # bool for float
    ("run.out_dir", 5),                # int for string
    ("data.mirror", "yes"),            # string for bool
    ("data.mirror", 1),                # int for bool
    ("optim.generator.betas", [0.5]),  # wrong length
    ("optim.generator.betas", [0.5, 0.9, 0.99]),
    ("optim.generator.betas", 0.5),
    ("optim.discriminator.betas", ["a", "b"]),
    ("eval.metrics", "swd"),           # string for list of strings
    ("eval.metrics", ["swd", 3]),
    ("losses.0.weight", "heavy"),
    ("losses.0.name", 3),
])
def test_wrong_type_names_the_key_path(dotted, value):
    message = user_error(with_value(dotted, value))
    assert dotted.rsplit(".", 1)[0] in message
    assert dotted.rsplit(".", 1)[1] in message


@pytest.mark.parametrize("raw, fragment", [
    (minimal(train=5), "train"),
    (minimal(optim={"generator": "adam"}), "optim.generator"),
    ({"data": {"resolution": 32}, "losses": {"name": "bce"}}, "losses"),
    ({"data": {"resolution": 32}, "losses": ["bce"]}, "losses"),
    ({"data": 32, "losses": [{"name": "bce"}]}, "data"),
])
def test_a_value_where_a_table_belongs(raw, fragment):
    assert fragment in user_error(raw)


# --- choices and ranges ------------------------------------------------------------------------

@pytest.mark.parametrize("dotted, value", [
    ("run.device", "gpu"),
    ("run.device", "CUDA"),
    ("run.precision", "fp16"),
    ("optim.generator.name", "adagrad"),
    ("optim.discriminator.name", "Adam"),
])
def test_bad_choice(dotted, value):
    message = user_error(with_value(dotted, value))
    assert f'got "{value}"' in message  # spelled as TOML spells a string (was repr: 'gpu')
    assert dotted.rsplit(".", 1)[1] in message


@pytest.mark.parametrize("dotted, value", [
    ("train.kimg", -1.0),
    ("train.kimg", 0),
    ("train.batch_size", 0),
    ("train.n_critic", -2),
    ("train.keep_snapshots", -1),
    ("optim.generator.lr", 0.0),
    ("optim.discriminator.lr", -1e-3),
    ("optim.generator.eps", 0.0),
    ("optim.generator.weight_decay", -0.1),
    ("ema.beta", 1.0),
    ("ema.beta", 1),
    ("ema.beta", 1.5),
    ("ema.beta", -0.1),
    ("eval.every_kimg", -1.0),
    ("eval.num_images", 0),
])
def test_out_of_range(dotted, value):
    message = user_error(with_value(dotted, value))
    assert dotted.rsplit(".", 1)[1] in message


@pytest.mark.parametrize("dotted, value", [("ema.beta", 0.0), ("ema.beta", 0.9999),
                                           ("train.keep_snapshots", 0), ("data.workers", -1),
                                           ("data.workers", 0), ("eval.every_kimg", 0.0)])
def test_boundary_values_are_accepted(dotted, value):
    recipe_from_dict(with_value(dotted, value))


def test_negative_workers_is_a_user_error():
    # data.workers has a plain attrs validator: its ValueError must become a UserError too,
    # or the CLI exits 1 with a traceback instead of 2 with one line.
    message = user_error(with_value("data.workers", -2))
    assert "workers" in message


@pytest.mark.parametrize("dotted", ["train.kimg", "optim.generator.lr", "train.log_kimg"])
def test_nan_is_not_positive(dotted):
    message = user_error(with_value(dotted, math.nan))
    assert dotted.rsplit(".", 1)[1] in message


@pytest.mark.parametrize("dotted", ["train.kimg", "train.snapshot_kimg", "train.log_kimg",
                                    "train.sample_kimg", "losses.0.weight", "optim.generator.lr",
                                    "optim.discriminator.eps", "optim.generator.weight_decay",
                                    "optim.generator.momentum", "optim.generator.alpha",
                                    "eval.every_kimg"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_float_fields_must_be_finite(dotted, value):
    table, key = dotted.rsplit(".", 1)
    message = user_error(with_value(dotted, value))
    assert key in message and f"[{table}]" in message
    assert message.endswith(f"got {ganzoo.checks.show(value)}")


def test_range_messages_name_the_table_and_the_value():
    assert user_error(with_value("train.kimg", math.inf)) == (
        "recipe: [train] kimg must be a finite number > 0, got inf")
    assert user_error(with_value("losses.0.weight", math.nan)) == (
        "recipe: [losses.0] weight must be a finite number, got nan")


def test_a_negative_loss_weight_is_still_allowed():
    assert recipe_from_dict(with_value("losses.0.weight", -0.5)).losses[0].weight == -0.5


@pytest.mark.parametrize("betas, index", [([1.0, 0.999], 0), ([0.5, 1.0], 1), ([0.5, -0.1], 1),
                                          ([1.5, 0.9], 0)])
def test_adam_betas_each_lie_in_the_unit_interval(betas, index):
    message = user_error(with_value("optim.discriminator.betas", betas))
    assert f"[optim.discriminator] betas.{index} must lie in [0, 1)" in message


def test_betas_at_the_boundary_are_accepted():
    recipe = recipe_from_dict(with_value("optim.generator.betas", [0, 0.9999]))
    assert recipe.optim.generator.betas == (0.0, 0.9999)


@pytest.mark.parametrize("seed", [-1, 2**63, 2**64])
def test_seed_out_of_range(seed):
    assert "[run] seed must be an integer in [0, 2**63)" in user_error(with_value("run.seed", seed))


@pytest.mark.parametrize("seed", [0, 2**63 - 1])
def test_seed_at_the_boundary(seed):
    assert recipe_from_dict(with_value("run.seed", seed)).run.seed == seed


def test_eval_keeps_metric_tables_and_refuses_other_extra_keys():
    recipe = recipe_from_dict(minimal(eval={"metrics": ["swd"], "swd": {"num_images": 64}}))
    assert recipe.eval.params == {"swd": {"num_images": 64}}
    message = user_error(minimal(eval={"metrics": ["swd"], "num_imgs": 64}))
    assert "unknown key 'num_imgs' in [eval] (did you mean 'num_images'?)" in message


# --- required parts ----------------------------------------------------------------------------

def test_missing_resolution():
    message = user_error({"data": {"dataset": "toyfaces"}, "losses": [{"name": "bce"}]})
    assert "resolution" in message and "[data]" in message
    assert "resolution" in user_error({"losses": [{"name": "bce"}]})


def test_missing_losses():
    assert "losses" in user_error({"data": {"resolution": 32}})
    assert "losses" in user_error({"data": {"resolution": 32}, "losses": []})


def test_loss_without_name():
    message = user_error({"data": {"resolution": 32}, "losses": [{"weight": 1.0}]})
    assert "'name'" in message and "losses" in message


# --- component tables keep their own keys ------------------------------------------------------

def test_component_tables_keep_unknown_keys_in_params():
    recipe = recipe_from_dict({
        "data": {"dataset": "image_folder", "root": "faces", "resolution": 64, "mirror": True,
                 "crop": {"size": 60}},
        "model": {"name": "dcgan", "latent_dim": 128, "normalizer": "instance"},
        "losses": [{"name": "bce", "weight": 2, "label_smoothing": 0.1},
                   {"name": "nonsaturating"}],
        "schedule": {"name": "progressive", "start_resolution": 4,
                     "lr": {"4": 0.001, "8": 0.002}},
    })
    assert recipe.data.dataset == "image_folder" and recipe.data.mirror is True
    assert recipe.data.params == {"root": "faces", "resolution": 64, "crop": {"size": 60}}
    assert recipe.model.name == "dcgan"
    assert recipe.model.params == {"latent_dim": 128, "normalizer": "instance"}
    assert recipe.losses[0].weight == 2.0
    assert recipe.losses[0].params == {"label_smoothing": 0.1}
    assert recipe.losses[1].params == {}
    assert recipe.schedule.name == "progressive"
    assert recipe.schedule.params == {"start_resolution": 4, "lr": {"4": 0.001, "8": 0.002}}


# --- construct: the component's constructor checks its own keys --------------------------------

class ToyModels:
    """An in-process plugin with model factories of different shapes."""

    @ganzoo.hookimpl
    def ganzoo_register_models(self, register):
        def strict(*, resolution: int, channels: int, depth: int, width: int = 4):
            return ("strict", resolution, channels, depth, width)

        def loose(resolution, **kwargs):
            return ("loose", resolution, kwargs)

        def fussy(*, resolution: int, width: int = 4):
            if width > 100:
                raise ValueError("width must be at most 100")
            return ("fussy", width)

        register("toy_strict", strict)
        register("toy_loose", loose)
        register("toy_fussy", fussy)


@pytest.fixture
def toy_models():
    ganzoo.plugins.reset()
    ganzoo.plugins.state().add_plugin("toy", ToyModels())
    yield
    ganzoo.plugins.reset()


def construct_error(*args, **kwargs) -> str:
    with pytest.raises(ganzoo.UserError) as caught:
        construct(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_construct_unknown_dcgan_key_suggests_the_right_one():
    message = construct_error("models", "dcgan", {"latnt_dim": 5}, "[model]",
                              resolution=32, channels=3, label_dim=0)
    assert "'latnt_dim'" in message
    assert "[model]" in message
    assert "did you mean 'latent_dim'" in message


def test_construct_engine_supplied_keys_are_not_recipe_keys():
    # `resolution` comes from [data]; it is not a key of the [model] table.
    message = construct_error("models", "dcgan", {"resolution": 64}, "[model]",
                              resolution=32, channels=3, label_dim=0)
    assert "'resolution'" in message and "[model]" in message


def test_construct_missing_required_param():
    message = construct_error("models", "dcgan", {}, "[model]")
    assert "'resolution'" in message and "[model]" in message


def test_construct_unknown_loss_key():
    message = construct_error("losses", "bce", {"label_smoothng": 0.1}, "[[losses]] #1")
    assert "'label_smoothng'" in message and "[[losses]] #1" in message
    assert "did you mean 'label_smoothing'" in message


def test_construct_loss_message_says_loss():
    message = construct_error("losses", "bce", {"bogus": 1}, "[[losses]] #1")
    assert "loss 'bce'" in message and "losse " not in message, message


def test_construct_builds_a_loss_from_its_table():
    term = construct("losses", "nonsaturating", {"label_smoothing": 0.1}, "[[losses]] #1")
    assert hasattr(term, "generator_loss") or hasattr(term, "discriminator_loss")


def test_construct_unknown_component_name():
    message = construct_error("models", "dcgn", {}, "[model]", resolution=32)
    assert "'dcgn'" in message and "dcgan" in message


def test_construct_checks_required_and_passes_only_accepted_supplied(toy_models):
    built = construct("models", "toy_strict", {"depth": 3}, "[model]",
                      resolution=32, channels=3, label_dim=0)
    assert built == ("strict", 32, 3, 3, 4)  # label_dim is not offered to a factory without it

    message = construct_error("models", "toy_strict", {}, "[model]",
                              resolution=32, channels=3, label_dim=0)
    assert "'depth'" in message and "[model]" in message

    message = construct_error("models", "toy_strict", {"depth": 3, "wdth": 8}, "[model]",
                              resolution=32, channels=3)
    assert "'wdth'" in message and "did you mean 'width'" in message


def test_construct_var_keyword_factory_takes_any_key(toy_models):
    built = construct("models", "toy_loose", {"anything": 1}, "[model]", resolution=16)
    assert built == ("loose", 16, {"anything": 1})


def test_construct_value_error_becomes_user_error(toy_models):
    message = construct_error("models", "toy_fussy", {"width": 1000}, "[model]", resolution=8)
    assert "width must be at most 100" in message and "[model]" in message


# --- --set overrides ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("3", 3),
    ("0.5", 0.5),
    ("1e-8", 1e-8),
    ("true", True),
    ("false", False),
    ("[0.0, 0.99]", [0.0, 0.99]),
    ('"quoted string"', "quoted string"),
    ("'literal'", "literal"),
    ("{ a = 1 }", {"a": 1}),
    ("runs/x", "runs/x"),
    ("hello world", "hello world"),
    ("C:\\data", "C:\\data"),
    ("", ""),
])
def test_parse_value(text, expected):
    value = parse_value(text)
    assert value == expected and type(value) is type(expected)


def test_override_nested_keys_parse_as_toml():
    raw = minimal()
    apply_override(raw, "train.kimg=0.5")
    apply_override(raw, "run.seed=3")
    apply_override(raw, "optim.generator.betas=[0.0, 0.99]")
    apply_override(raw, "run.out_dir=runs/x")
    apply_override(raw, 'data.root="a dir = with equals"')
    assert raw["train"]["kimg"] == 0.5
    assert raw["run"]["seed"] == 3 and type(raw["run"]["seed"]) is int
    assert raw["optim"]["generator"]["betas"] == [0.0, 0.99]
    assert raw["run"]["out_dir"] == "runs/x"
    assert raw["data"]["root"] == "a dir = with equals"
    recipe = recipe_from_dict(raw)
    assert recipe.train.kimg == 0.5
    assert recipe.optim.generator.betas == (0.0, 0.99)
    assert recipe.data.params["root"] == "a dir = with equals"


def test_override_array_of_tables_by_index():
    raw = minimal(losses=[{"name": "bce"}, {"name": "nonsaturating", "weight": 3.0}])
    apply_override(raw, "losses.0.weight=2")
    apply_override(raw, "losses.1.label_smoothing=0.1")
    recipe = recipe_from_dict(raw)
    assert recipe.losses[0].weight == 2.0
    assert recipe.losses[1].weight == 3.0
    assert recipe.losses[1].params == {"label_smoothing": 0.1}


@pytest.mark.parametrize("override, fragment", [
    ("losses.1.weight=2", "losses.1"),
    ("losses.7.weight=2", "losses.7"),
    ("losses.-1.weight=2", "losses.-1"),
    ("losses.first.weight=2", "losses.first"),
    ("losses.1=2", "losses.1"),
])
def test_override_bad_index(override, fragment):
    with pytest.raises(ganzoo.UserError) as caught:
        apply_override(minimal(), override)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("override", ["train.kimg", "=5", " =5", ""])
def test_malformed_override(override):
    with pytest.raises(ganzoo.UserError) as caught:
        apply_override(minimal(), override)
    assert "key.path=VALUE" in str(caught.value)


def test_override_into_a_value_is_an_error():
    raw = minimal(run={"seed": 1})
    with pytest.raises(ganzoo.UserError) as caught:
        apply_override(raw, "run.seed.x=1")
    assert "run.seed" in str(caught.value)


def test_override_precedence_override_beats_file_beats_default(write):
    path = write("""
        [run]
        seed = 7
        out_dir = "runs/from_file"

        [data]
        resolution = 32

        [train]
        kimg = 5.0
        batch_size = 16

        [[losses]]
        name = "bce"
    """)
    recipe = load_recipe(path)
    assert (recipe.train.kimg, recipe.run.seed, recipe.train.n_critic) == (5.0, 7, 1)

    recipe = load_recipe(path, ["train.kimg=0.5", "run.seed=1", "run.seed=2",
                                "ema.beta=0.5", "data.resolution=64"])
    assert recipe.train.kimg == 0.5            # override beats file
    assert recipe.run.seed == 2                # the last override wins
    assert recipe.train.batch_size == 16       # file beats default
    assert recipe.run.out_dir == "runs/from_file"
    assert recipe.train.n_critic == 1          # default
    assert recipe.ema.beta == 0.5              # override of a table the file lacks
    assert recipe.data.resolution == 64


def test_override_with_unknown_key_is_checked_like_the_file(write):
    path = write("""
        [data]
        resolution = 32
        [[losses]]
        name = "bce"
    """)
    with pytest.raises(ganzoo.UserError) as caught:
        load_recipe(path, ["train.kimgg=1"])
    assert "'kimgg'" in str(caught.value) and "did you mean 'kimg'" in str(caught.value)
    with pytest.raises(ganzoo.UserError) as caught:
        load_recipe(path, ["train.batch_size=big"])
    assert "train.batch_size" in str(caught.value)


# --- writing the resolved recipe back as TOML ---------------------------------------------------

RICH = r'''
[run]
out_dir = 'runs/quote"s and \back\slashes/ünïcödé ☃ 🦊'
seed = 123
device = "cpu"
precision = "bf16"

[data]
dataset = "image_folder"
root = "C:\\data\\faces \"x\"\ttab\nnewline \u007f del \u2028 sep"
resolution = 64
mirror = true
workers = 0
extensions = [".png", ".jpg"]
empty = ""
crop = { size = 60, center = true }
"key with spaces" = 1
"dotted.key" = "x"
"ключ" = "значение"
nothing = {}

[model]
name = "dcgan"
latent_dim = 128
normalizer = "batch"
big = 4611686018427387904
negative = -3

[[losses]]
name = "nonsaturating"
weight = 1.0

[[losses]]
name = "bce"
weight = 0.5
label_smoothing = 0.1
tags = ["a", "b"]
mixed = [1, "two", 3.0, [4], { five = 5 }]
nested = { deep = { deeper = "yes" } }

[optim.generator]
name = "adam"
lr = 0.001
betas = [0.0, 0.99]
eps = 1e-8

[optim.discriminator]
name = "rmsprop"
lr = 1e-4
momentum = 0.9
betas = [0.5, 0.999]

[schedule]
name = "progressive"
start_resolution = 4
stabilize_kimg = 600.0
fade_kimg = 600.0
tiny = 5e-324
huge = 1e300
infinite = inf
minus_infinite = -inf
batch_size = { 4 = 128, 8 = 128, 16 = 64 }

[schedule.lr]
4 = 0.001
8 = 0.002
1024 = 0.0015

[[schedule.stages]]
resolution = 4
kimg = 0.1

[[schedule.stages]]
resolution = 8
kimg = 0.2

[train]
kimg = 0.25
batch_size = 8
n_critic = 5
log_kimg = 0.05

[ema]
beta = 0.0

[eval]
metrics = ["swd", "fid"]
every_kimg = 10.0

[eval.swd]
n_images = 1024
'''


def round_trip(recipe: Recipe) -> tuple[Recipe, str]:
    text = dumps_toml(recipe_to_dict(recipe))
    return recipe_from_dict(tomllib.loads(text)), text


def test_round_trip_of_a_rich_recipe():
    recipe = recipe_from_dict(tomllib.loads(RICH))
    assert recipe.schedule.params["lr"] == {"4": 0.001, "8": 0.002, "1024": 0.0015}
    again, text = round_trip(recipe)
    assert again == recipe, text
    # Writing is deterministic: the round-tripped recipe writes the same text.
    assert round_trip(again)[1] == text
    assert again.run.out_dir == 'runs/quote"s and \\back\\slashes/ünïcödé ☃ 🦊'
    assert again.data.params["root"] == 'C:\\data\\faces "x"\ttab\nnewline \x7f del \u2028 sep'
    assert again.optim.generator.eps == 1e-8 and again.losses[1].params["label_smoothing"] == 0.1
    assert again.schedule.params["infinite"] == math.inf


def test_round_trip_of_the_defaults():
    recipe = recipe_from_dict(minimal())
    again, text = round_trip(recipe)
    assert again == recipe
    assert tomllib.loads(text)["optim"]["generator"]["betas"] == [0.5, 0.999]


@pytest.mark.parametrize("text", ["\U000e0001", "a\U000f0000b", "\U0010fffd", "\x00", "\x1b[31m"])
def test_round_trip_of_unprintable_characters(text):
    recipe = recipe_from_dict(minimal(run={"out_dir": text}))
    again, written = round_trip(recipe)
    assert again.run.out_dir == text, written


def test_recipe_to_dict_flattens_params_into_their_table():
    raw = recipe_to_dict(recipe_from_dict(minimal(model={"name": "dcgan", "latent_dim": 8})))
    assert raw["model"] == {"name": "dcgan", "latent_dim": 8}
    assert raw["data"]["resolution"] == 32
    assert raw["losses"] == [{"name": "bce", "weight": 1.0}]
    assert raw["optim"]["generator"]["betas"] == [0.5, 0.999]


# --- file errors -------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ganzoo.UserError) as caught:
        load_recipe(path)
    assert "nope.toml" in str(caught.value)


def test_directory_is_not_a_recipe(tmp_path):
    with pytest.raises(ganzoo.UserError):
        load_recipe(tmp_path)


def test_invalid_toml(write):
    path = write("[data\nresolution = 32\n")
    with pytest.raises(ganzoo.UserError) as caught:
        load_recipe(path)
    assert str(path) in str(caught.value) and "TOML" in str(caught.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[run]\nout_dir = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ganzoo.UserError) as caught:
        load_recipe(path)
    assert str(path) in str(caught.value)


def test_errors_from_a_file_name_the_file(write):
    path = write("""
        [data]
        resolution = 32
        [[losses]]
        name = "bce"
        [train]
        kmig = 1
    """)
    with pytest.raises(ganzoo.UserError) as caught:
        load_recipe(path)
    message = str(caught.value)
    assert str(path) in message and "'kmig'" in message and "[train]" in message
