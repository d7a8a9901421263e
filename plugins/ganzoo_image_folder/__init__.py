"""ganzoo plugin "image_folder": the `image_folder` dataset, its multi-resolution cache
(`cache`: the reader, `build`: `prepare_cache`) and the `ganzoo prepare` command.

Registered through `ganzoo_image_folder.plugin`, exactly as a third-party plugin would be.
"""
