"""ganzoo.structure: component parameters typed by their constructors' annotations, strictly."""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import ganzoo
import ganzoo.plugins
import pytest
from ganzoo.recipe import load_recipe
from ganzoo.structure import construct

REPO = Path(__file__).resolve().parents[1]


class Typed:
    """A loss whose parameters cover the shapes a TOML table can hold."""

    def __init__(self, count: int = 1, scale: float = 1.0, flag: bool = False, label: str = "x",
                 sizes: list[int] | None = None, pair: tuple[int, str] = (0, "a"),
                 per_resolution: dict[int, float] | None = None,
                 groups: dict[str, list[int]] | None = None, either: str | list[str] = "s",
                 loose: Mapping | None = None, maybe: int | None = None):
        self.__dict__.update(locals())
        del self.__dict__["self"]

    def discriminator_loss(self, ctx):  # what makes it a loss (checked at registration)
        return None


def unannotated(a, b=2, **rest):
    return ("unannotated", a, b, rest)


def needs_nothing_known(value: "NoSuchType" = 1):  # noqa: F821 - an annotation that does not resolve
    return ("unresolved", value)


class ToyPlugin:
    @ganzoo.hookimpl
    def ganzoo_register_losses(self, register):
        register("toy_typed", Typed)

    @ganzoo.hookimpl
    def ganzoo_register_models(self, register):  # any callable: plain functions too
        register("toy_unannotated", unannotated)
        register("toy_unresolved", needs_nothing_known)


@pytest.fixture(autouse=True)
def toy():
    ganzoo.plugins.reset()
    ganzoo.plugins.state().add_plugin("toy", ToyPlugin())
    yield
    ganzoo.plugins.reset()


def typed(**params) -> Typed:
    return construct("losses", "toy_typed", params, "[[losses]] #1")


def error(kind: str, name: str, params: dict, table: str = "[[losses]] #1", **supplied) -> str:
    with pytest.raises(ganzoo.UserError) as caught:
        construct(kind, name, params, table, **supplied)
    message = str(caught.value)
    assert "\n" not in message, "user errors are one line"
    assert "NoneType" not in message and "datetime" not in message and "<class" not in message
    return message


# --- scalars -----------------------------------------------------------------------------------

def test_defaults_stay_the_constructors_own():
    built = typed()
    assert (built.count, built.scale, built.flag, built.sizes, built.maybe) == (1, 1.0, False, None, None)


def test_a_float_parameter_takes_an_integer_as_a_float():
    built = typed(scale=2)
    assert built.scale == 2.0 and type(built.scale) is float


def test_string_for_a_plugin_models_integer_is_refused():
    message = error("models", "dcgan", {"latent_dim": "3"}, "[model]", resolution=32)
    assert message == ("[model] for model 'dcgan': 'latent_dim' must be an integer, "
                       'got string "3"')


def test_true_for_a_number_is_refused():
    message = error("losses", "bce", {"label_smoothing": True})
    assert message == ("[[losses]] #1 for loss 'bce': 'label_smoothing' must be a number, "
                       "got boolean true")


@pytest.mark.parametrize("key, value, expected, given", [
    ("count", 2.0, "an integer", "float 2.0"),
    ("count", True, "an integer", "boolean true"),
    ("count", "2", "an integer", 'string "2"'),
    ("flag", 1, "a boolean", "integer 1"),
    ("flag", 0, "a boolean", "integer 0"),
    ("flag", "true", "a boolean", 'string "true"'),
    ("label", 3, "a string", "integer 3"),
    ("label", 1.5, "a string", "float 1.5"),
    ("label", ["x"], "a string", 'array ["x"]'),
    ("scale", [1.0], "a number", "array [1.0]"),
    ("scale", {"a": 1}, "a number", "table { a = 1 }"),
])
def test_wrong_scalar_types_say_what_was_expected_and_given(key, value, expected, given):
    message = error("losses", "toy_typed", {key: value})
    assert f"'{key}' must be {expected}, got {given}" in message
    assert "[[losses]] #1 for loss 'toy_typed'" in message


@pytest.mark.parametrize("value, spelled, kind", [
    (datetime.date(2024, 5, 1), "2024-05-01", "date"),
    (datetime.datetime(2024, 5, 1, 12, 30), "2024-05-01T12:30:00", "date-time"),
    (datetime.time(7, 15), "07:15:00", "time"),
])
def test_a_toml_date_where_a_number_belongs_is_named_in_toml_terms(value, spelled, kind):
    message = error("losses", "toy_typed", {"scale": value})
    assert message.endswith(f"'scale' must be a number, got {kind} {spelled}")


def test_a_date_from_a_recipe_file_is_named_in_toml_terms(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[data]\nresolution = 32\n[[losses]]\nname = "bce"\n[train]\nkimg = 2024-05-01\n')
    with pytest.raises(ganzoo.UserError) as caught:
        load_recipe(path)
    assert str(caught.value).endswith("'train.kimg' must be a number, got date 2024-05-01")


# --- nested types ------------------------------------------------------------------------------

def test_nested_types_are_structured_as_annotated():
    built = typed(sizes=[1, 2], pair=[3, "b"], per_resolution={"4": 1, "8": 0.5},
                  groups={"hair": [0, 1]}, either=["a", "b"], loose={"4": "anything"}, maybe=3)
    assert built.sizes == [1, 2]
    assert built.pair == (3, "b")
    assert built.per_resolution == {4: 1.0, 8: 0.5}  # TOML keys are strings; the annotation says int
    assert all(type(v) is float for v in built.per_resolution.values())
    assert built.groups == {"hair": [0, 1]}
    assert built.either == ["a", "b"] and typed(either="one").either == "one"
    assert built.loose == {"4": "anything"}  # an unparameterized Mapping keeps its values
    assert built.maybe == 3


@pytest.mark.parametrize("params, fragment", [
    ({"sizes": [1, "2"]}, "'sizes.1' must be an integer, got string \"2\""),
    ({"sizes": 3}, "'sizes' must be an array of integers, got integer 3"),
    ({"sizes": "1, 2"}, "'sizes' must be an array of integers"),
    ({"pair": [1]}, "'pair' must be an array of 2 values, got array [1]"),
    ({"pair": [1, 2]}, "'pair.1' must be a string, got integer 2"),
    ({"per_resolution": {"4": "fast"}}, "'per_resolution.4' must be a number, got string \"fast\""),
    ({"per_resolution": {"four": 1.0}}, "'per_resolution' must be a table keyed by integers, got key \"four\""),
    ({"per_resolution": [1.0]}, "'per_resolution' must be a table"),
    ({"groups": {"hair": [0, True]}}, "'groups.hair.1' must be an integer, got boolean true"),
    ({"either": 3}, "'either' must be a string or an array of strings, got integer 3"),
    ({"either": ["a", 3]}, "'either.1' must be a string, got integer 3"),
    ({"loose": 5}, "'loose' must be a table"),
    ({"maybe": "3"}, "'maybe' must be an integer, got string \"3\""),
])
def test_nested_errors_name_the_key_path(params, fragment):
    assert fragment in error("losses", "toy_typed", params)


# --- keys --------------------------------------------------------------------------------------

def test_unknown_key_gets_the_hint_and_the_known_keys():
    message = error("losses", "toy_typed", {"scael": 2.0})
    assert message.startswith("unknown key 'scael' in [[losses]] #1 for loss 'toy_typed' "
                              "(did you mean 'scale'?); known: count, scale, flag, label")


def test_missing_required_key():
    assert error("models", "toy_unannotated", {}, "[model]") == "[model] for model 'toy_unannotated' needs 'a'"


def test_a_constructor_without_annotations_takes_any_toml_value():
    when = datetime.date(2024, 1, 1)
    built = construct("models", "toy_unannotated", {"a": {"x": [1, "y"]}, "b": when, "c": True},
                      "[model]")
    assert built == ("unannotated", {"x": [1, "y"]}, when, {"c": True})


def test_an_annotation_that_does_not_resolve_takes_any_value():
    assert construct("models", "toy_unresolved", {"value": "text"}, "[model]") == (
        "unresolved", "text")


# --- through the command line, as a user meets it -----------------------------------------------

def test_cli_refuses_a_string_for_a_datasets_integer_with_exit_code_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ganzoo", "data", "preview", str(REPO / "recipes/dcgan_toyfaces.toml"),
         "--n", "4", "--out", str(tmp_path / "x.png"), "--set", 'data.size="256"'],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "'size' must be an integer, got string \"256\"" in result.stderr
    assert "[data] for dataset 'toyfaces'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("params, fragment", [
    ({"decay_start_kimg": 5, "decay_end_kimg": 3}, "needs decay_start_kimg < decay_end_kimg"),
    ({"decay_start_kimg": -1, "decay_end_kimg": 3}, "decay_start_kimg must be a number >= 0"),
    ({"decay_start_kimg": 1, "decay_end_kimg": float("inf")}, "decay_end_kimg must be a finite number"),
    ({"decay_start_kimg": 1}, "needs both"),
    ({"decay_end_kimg": "3"}, "'decay_end_kimg' must be a number, got string \"3\""),
])
@pytest.mark.parametrize("name", ["fixed", "progressive"])
def test_a_schedules_decay_is_checked(name, params, fragment):  # one LinearDecay behind both
    message = error("schedules", name, params, "[schedule]", resolution=32, train_batch_size=8)
    assert fragment in message and "[schedule]" in message


def test_a_misspelt_required_key_is_reported_as_unknown_not_missing():
    message = error("models", "dcgan", {"resolutin": 32}, "[model]")
    assert message.startswith("unknown key 'resolutin' in [model] for model 'dcgan' "
                              "(did you mean 'resolution'?)")
