"""DCGAN for ganzoo (Radford et al. 2016), plus the original GAN losses; hooks in `plugin`."""
