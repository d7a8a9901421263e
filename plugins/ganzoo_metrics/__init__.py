"""Image-quality metrics for ganzoo: ProGAN's own (`swd`, `ms_ssim`, as its official protocol) and the
field's Inception metrics through torch-fidelity (`fid`, `kid`, `isc`, `prc`); hooks in `plugin`."""
