"""Image-quality metrics for ganzoo, following ProGAN's official protocol: the sliced
Wasserstein distance (`swd`) and MS-SSIM (`ms_ssim`); hooks in `plugin`."""
