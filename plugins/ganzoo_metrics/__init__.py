"""Image-quality metrics for ganzoo; hooks in `plugin`."""
