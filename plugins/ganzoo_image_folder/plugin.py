"""ganzoo plugin "image_folder": folders of image files as datasets, and `ganzoo prepare`."""

from __future__ import annotations

import ganzoo


@ganzoo.hookimpl
def ganzoo_register_datasets(register):
    from ganzoo_image_folder.folder import ImageFolder

    register("image_folder", ImageFolder)


@ganzoo.hookimpl
def ganzoo_register_commands(subparsers):
    from ganzoo_image_folder.command import add_prepare_command

    add_prepare_command(subparsers)
