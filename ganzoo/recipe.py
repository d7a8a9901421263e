"""Recipes: TOML files loaded into frozen attrs classes, with `--set` overrides.

Precedence: `--set` overrides > recipe file > defaults. The tables are structured by the one
strict converter in `ganzoo.structure`: unknown keys, wrong types and values out of range are
UserErrors naming the key path and its table. Tables that configure a registered component
([data], [model], [[losses]], [schedule], [eval.<metric>]) keep the component's own keys in
`params`; those are typed by the component's constructor when it is built
(`ganzoo.structure.construct`).
"""

import difflib
import tomllib
from pathlib import Path
from typing import Any

import attrs
import tomli_w

from ganzoo import checks
from ganzoo.errors import UserError
from ganzoo.structure import params_field, structure

_CHOICES = {
    "device": ("auto", "cpu", "cuda"),
    "precision": ("fp32", "bf16", "auto"),
    "switch": ("auto", True, False),
    "optimizer": ("adam", "adamw", "rmsprop", "sgd"),
}


def _check(check):
    """An attrs validator from a `ganzoo.checks` call; messages name the key."""
    def validator(instance, attribute, value):
        check(value, attribute.name)
    return validator


def _one_of(kind: str):
    return _check(lambda value, what: checks.one_of(value, _CHOICES[kind], what))


def _seed(value, what):
    # TOML integers are signed 64-bit; torch.manual_seed takes any of these.
    if not (checks.integer(value, what) >= 0 and value < 2**63):
        raise UserError(f"{what} must be an integer in [0, 2**63), got {checks.show(value)}")


def _betas(value, what):
    for i, beta in enumerate(value):  # Adam's moment decays: 1 would never forget
        checks.in_range(beta, 0.0, 1.0, f"{what}.{i}", high_open=True)


_positive = _check(checks.positive)  # a finite number > 0
_count = _check(checks.count)  # an integer >= 1
_finite = _check(checks.finite)
_non_negative = _check(lambda value, what: checks.at_least(value, 0, what))


@attrs.frozen
class RunConfig:
    out_dir: str = "runs/default"
    seed: int = attrs.field(default=0, validator=_check(_seed))
    device: str = attrs.field(default="auto", validator=_one_of("device"))
    # bf16 autocast, or "auto": bf16 where the hardware computes it natively (CUDA with bf16,
    # a CPU with AVX512-BF16 for oneDNN), fp32 elsewhere, where bf16 is emulated and slow.
    precision: str = attrs.field(default="fp32", validator=_one_of("precision"))
    # Speed (ganzoo.engine.speed): none changes what is computed beyond float rounding.
    compile: str | bool = attrs.field(default="auto", validator=_one_of("switch"))  # torch.compile G and D's scores; "auto": on CUDA
    channels_last: str | bool = attrs.field(default="auto", validator=_one_of("switch"))  # NHWC memory format; "auto": on CUDA
    threads: int = attrs.field(default=0, validator=_non_negative)  # torch's CPU threads; 0: torch's default
    malloc_cache: str | bool = attrs.field(default="auto", validator=_one_of("switch"))  # glibc keeps freed memory; "auto": on CPU
    tf32: bool = True  # CUDA Ampere+: fp32 matmuls/convs on TF32 tensor cores; false for full fp32


@attrs.frozen
class DataConfig:
    dataset: str = "toyfaces"
    mirror: bool = False  # horizontal flips, decided per sample by the deterministic sampler
    workers: int = attrs.field(default=-1, validator=_check(
        lambda value, what: checks.at_least(value, -1, what)))  # -1: automatic
    hint: str = ""  # appended to data errors, e.g. where to obtain the dataset
    params: dict = params_field()  # the dataset's own keys (resolution, root, ...)

    @property
    def resolution(self) -> int:
        return self.params["resolution"]


@attrs.frozen
class ModelConfig:
    name: str = "dcgan"
    params: dict = params_field()


@attrs.frozen
class LossConfig:
    name: str
    weight: float = attrs.field(default=1.0, validator=_finite)
    params: dict = params_field()


@attrs.frozen
class OptimizerConfig:
    name: str = attrs.field(default="adam", validator=_one_of("optimizer"))
    lr: float = attrs.field(default=2e-4, validator=_positive)
    betas: tuple[float, float] = attrs.field(default=(0.5, 0.999), validator=_check(_betas))
    eps: float = attrs.field(default=1e-8, validator=_positive)
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    momentum: float = attrs.field(default=0.0, validator=_non_negative)  # sgd, rmsprop
    alpha: float = attrs.field(default=0.99, validator=_positive)  # rmsprop smoothing


@attrs.frozen
class OptimConfig:
    generator: OptimizerConfig = attrs.Factory(OptimizerConfig)
    discriminator: OptimizerConfig = attrs.Factory(OptimizerConfig)


@attrs.frozen
class ScheduleConfig:
    name: str = "fixed"
    params: dict = params_field()


@attrs.frozen
class TrainConfig:
    kimg: float = attrs.field(default=100.0, validator=_positive)  # thousands of real images shown to D
    batch_size: int = attrs.field(default=64, validator=_count)
    n_critic: int = attrs.field(default=1, validator=_count)  # D steps per G step
    log_kimg: float = attrs.field(default=1.0, validator=_positive)
    sample_kimg: float = attrs.field(default=10.0, validator=_positive)
    snapshot_kimg: float = attrs.field(default=50.0, validator=_positive)
    keep_snapshots: int = attrs.field(default=5, validator=_check(
        lambda value, what: checks.count(value, what, minimum=0)))  # 0 keeps all
    sample_grid: int = attrs.field(default=64, validator=_count)  # images in each sample grid
    # Optimizer steps whose gradients are non-finite that may be skipped (nothing applied)
    # before the run stops as diverged; 0 stops at the first.
    skip_nonfinite_steps: int = attrs.field(default=0, validator=_check(
        lambda value, what: checks.count(value, what, minimum=0)))


@attrs.frozen
class EmaConfig:
    beta: float = attrs.field(default=0.999, validator=_check(  # 0 disables averaging
        lambda value, what: checks.in_range(value, 0.0, 1.0, what, high_open=True)))
    # > 0: the average's half-life is at most rampup x the images since the schedule's current
    # phase began (engine/ema.py); 0, the default: beta throughout, as the ProGAN paper
    rampup: float = attrs.field(default=0.0, validator=_non_negative)
    # > 0: from this kimg to the end of the run the average weighs every G step equally (a
    # running mean seeded with the EMA; engine/ema.py); 0, the default: the EMA throughout
    mean_from_kimg: float = attrs.field(default=0.0, validator=_non_negative)


@attrs.frozen
class EvalConfig:
    metrics: list[str] = attrs.Factory(list)
    every_kimg: float = attrs.field(default=0.0, validator=_non_negative)  # 0: only at the end
    num_images: int = attrs.field(default=10_000, validator=_count)
    params: dict = params_field(only_tables=True)  # per-metric tables, e.g. [eval.swd]


@attrs.frozen
class LogConfig:
    tensorboard: bool = False  # scalars and sample grids into out_dir/tb (needs ganzoo[tb])


@attrs.frozen
class Recipe:
    run: RunConfig = attrs.Factory(RunConfig)
    data: DataConfig = attrs.Factory(DataConfig)
    model: ModelConfig = attrs.Factory(ModelConfig)
    losses: list[LossConfig] = attrs.Factory(list)
    optim: OptimConfig = attrs.Factory(OptimConfig)
    schedule: ScheduleConfig = attrs.Factory(ScheduleConfig)
    train: TrainConfig = attrs.Factory(TrainConfig)
    ema: EmaConfig = attrs.Factory(EmaConfig)
    eval: EvalConfig = attrs.Factory(EvalConfig)
    log: LogConfig = attrs.Factory(LogConfig)


SHIPPED = Path(__file__).resolve().parent / "recipes"  # installed with the package


def shipped_recipes() -> dict[str, tuple[Path, str]]:
    """The recipes that come with ganzoo: name -> (path, the first line of its header comment)."""
    found = {}
    for path in sorted(SHIPPED.glob("*.toml")):
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        found[path.stem] = (path, first[0].lstrip("# ").strip() if first and first[0].startswith("#") else "")
    return found


def find_recipe(name: str | Path) -> Path:
    """A recipe file as given, or a shipped recipe by its bare name (`progan_toyfaces`)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = shipped_recipes()
    if path.parent == Path(".") and path.stem in shipped and path.suffix in ("", ".toml"):
        return shipped[path.stem][0]
    hint = difflib.get_close_matches(path.stem, list(shipped), n=1)
    raise UserError(f"recipe '{name}' does not exist" + (f" (did you mean the shipped '{hint[0]}'?)" if hint else "")
                    + f"; shipped recipes: {', '.join(shipped)} (see `ganzoo list recipes`)")


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    path = find_recipe(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"recipe '{path}' is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"recipe '{path}' is not UTF-8 text") from None
    for override in overrides:
        apply_override(raw, override)
    return recipe_from_dict(raw, source=str(path))


def recipe_from_dict(raw: dict, source: str = "recipe") -> Recipe:
    try:
        recipe = structure(raw, Recipe)
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    if "resolution" not in recipe.data.params:
        raise UserError(f"{source}: [data] needs 'resolution'")
    if not recipe.losses:
        raise UserError(f"{source}: the recipe has no [[losses]]; add at least one loss term")
    return recipe


def parse_value(text: str) -> Any:
    """A `--set` VALUE: parsed as TOML, falling back to a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict, override: str) -> None:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {override!r} must look like key.path=VALUE")
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, where)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise UserError(f"--set {key}: '{where}' is a value, not a table")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = parse_value(value)
    else:
        node[last] = parse_value(value)


def _list_index(items: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise UserError(f"--set {where}: index {part!r} out of range (the array has {len(items)} entries)")
    return int(part)


# ---------------------------------------------------------------------------------------------
# Writing the resolved recipe back as TOML


def recipe_to_dict(recipe: Recipe) -> dict:
    def unfold(obj):
        if attrs.has(type(obj)):
            out = {}
            for f in attrs.fields(type(obj)):
                value = getattr(obj, f.name)
                if f.name == "params":
                    out.update({k: unfold(v) for k, v in value.items()})
                else:
                    out[f.name] = unfold(value)
            return out
        if isinstance(obj, (list, tuple)):
            return [unfold(v) for v in obj]
        if isinstance(obj, dict):
            return {k: unfold(v) for k, v in obj.items()}
        return obj
    return unfold(recipe)


def dumps_toml(data: dict) -> str:
    return tomli_w.dumps(data)
