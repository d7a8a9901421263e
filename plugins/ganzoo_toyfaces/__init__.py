"""ganzoo plugin "toyfaces": the built-in toyfaces dataset, its attribute classifier and metrics.

Registered through `ganzoo_toyfaces.plugin`, exactly as a third-party plugin would be.
"""
