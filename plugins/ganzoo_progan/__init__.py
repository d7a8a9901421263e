"""ProGAN for ganzoo (Karras et al., ICLR 2018, "Progressive Growing of GANs for Improved
Quality, Stability, and Variation"); hooks in `plugin`.

Parts any family may reuse: the blocks `equalized_conv2d`, `equalized_linear` and
`minibatch_stddev`, the normalizer `pixelnorm`, and the growth schedule `progressive`.
The model family `progan` builds the paper's generator and discriminator from them.
"""
