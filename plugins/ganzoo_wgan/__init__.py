"""WGAN, WGAN-GP and related critic losses for ganzoo; hooks in `plugin`.

Losses: `wasserstein`, `weight_clip` (Arjovsky et al. 2017), `gradient_penalty`
(Gulrajani et al. 2017), `drift` (Karras et al. 2018), `hinge` (Lim & Ye 2017; Miyato et al.
2018) and `least_squares` (Mao et al. 2017).
"""
