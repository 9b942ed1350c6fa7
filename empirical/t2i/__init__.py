"""Locality of text-to-image diffusion UNets (SD, SDXL via diffusers) in latent and feature space.

``spec`` (the prompt spec JSON), ``model`` (a pipeline folder as an EDM-form latent denoiser, the
sigma <-> timestep mapping), ``measure`` (spatial, conditional and feature-space locality),
``run`` (prompt sets x sigma grid -> report), ``figures``. The CLI is ``localcomp t2i locality``
(``empirical.cli.t2i``); docs/t2i-locality.md states the method. diffusers and transformers are
the optional ``t2i`` extra and are imported only by ``model.load_denoiser``.
"""
