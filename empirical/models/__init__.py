"""Denoisers and their EDM machinery: preconditioning and loss (edm), the set UNet, the patch-local denoiser, and the sampler."""
