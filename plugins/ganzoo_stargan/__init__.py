"""StarGAN for ganzoo (Choi et al., CVPR 2018): multi-domain image-to-image translation.

Conditioning blocks (`label_concat`, `class_head`), the `domain_classification` and
`cycle_reconstruction` losses, the `stargan` model family, and the `celeba` and `joint`
(mask vector) datasets, and translation (`translation`: inputs, grids, the `translate`
command); hooks in `plugin`.
"""
