"""Locality diagnostics of any denoiser: spatial Jacobian radius and conditional leakage."""
