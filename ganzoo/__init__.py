"""ganzoo: a plugin-style, modular GAN zoo for PyTorch.

Public API for users and plugin authors:
  hookimpl            mark a plugin's hook implementations
  registry(kind)      the registry of "blocks", "losses", "normalizers", "schedules",
                      "models", "datasets" or "metrics"
  LossContext         what a loss term sees of one step
  GANModel            what a model family builds
  make_normalizer     build a registered normalizer for a layer width
  UserError           the error for bad input (exit code 2 at the CLI)
"""

from ganzoo.context import LossContext
from ganzoo.errors import UserError
from ganzoo.hookspecs import hookimpl
from ganzoo.model import (GANModel, apply_attributes, make_normalizer, single_attribute_targets,
                          split_critic_output)
from ganzoo.plugins import registry

__version__ = "0.1.0"

__all__ = ["GANModel", "apply_attributes", "LossContext", "UserError", "__version__", "hookimpl", "make_normalizer",
           "registry", "single_attribute_targets", "split_critic_output"]
