"""Empirical layer (PyTorch): CLEVR rendering, datasets, denoisers, training, sampling, Kmax
evaluation and locality diagnostics of trained networks."""
