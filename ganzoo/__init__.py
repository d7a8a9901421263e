"""ganzoo: a plugin-style, modular GAN zoo for PyTorch.

The public API, for users and plugin authors (plugins import nothing else of ganzoo):
  hookimpl            mark a plugin's hook implementations (the hooks: ganzoo.hookspecs)
  registry(kind)      the registry of "blocks", "losses", "normalizers", "schedules",
                      "models", "datasets" or "metrics"
  LossContext         what a loss term sees of one step
  GANModel            what a model family builds; generate() runs its G in batches
  GrowthState         what a growth schedule's state(kimg) returns
  LinearDecay         the [schedule] decay_start_kimg / decay_end_kimg lr decay, for any schedule
  EvalContext         what a metric receives
  load_run(path)      a snapshot (or a run folder's newest) rebuilt: recipe, model, G-EMA, D
  load_generator(path) an export, snapshot or run folder's EMA generator, ready: G(z), G.sample(n, seed)
  ImageDataset        the base class of datasets; read_image() decodes, crops and resizes a file
  make_normalizer     build a registered normalizer for a layer width
  UserError           the error for bad input (exit code 2 at the CLI)
  checks              range checks for recipe values (power_of_two, at_least, ...)
  dataset             the dataset contract, image-file decoding (read_image_array), downsample_uint8
  files               atomic file writes
  images              uint8 <-> float conversion, grids, PNG files
"""

from importlib.metadata import version as _dist_version

from ganzoo import checks, dataset, files, images
from ganzoo.context import LossContext
from ganzoo.dataset import ImageDataset, read_image
from ganzoo.engine.checkpoint import list_snapshots
from ganzoo.engine.inference import load_generator, load_run
from ganzoo.engine.schedule import GrowthState, LinearDecay
from ganzoo.errors import UserError
from ganzoo.evaluation import EvalContext, run_metrics
from ganzoo.hookspecs import hookimpl
from ganzoo.model import (GANModel, apply_attributes, generate, make_normalizer, parse_attributes,
                          shuffled, single_attribute_targets, split_critic_output)
from ganzoo.plugins import registry

__version__ = _dist_version("ganzoo")  # one source: the package metadata (pyproject.toml)

__all__ = ["EvalContext", "GANModel", "GrowthState", "ImageDataset", "LinearDecay", "LossContext", "UserError",
           "__version__", "apply_attributes", "checks", "dataset", "files", "generate", "hookimpl", "images", "list_snapshots", "load_generator", "load_run",
           "make_normalizer", "parse_attributes", "read_image", "registry", "run_metrics",
           "shuffled", "single_attribute_targets", "split_critic_output"]
