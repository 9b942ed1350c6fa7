import os

import pytest

from hypothesis import HealthCheck, settings

# Symbolic and JAX-compiled checks are slow per example: no deadline, few examples in CI.
settings.register_profile("ci", max_examples=10, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny torch models on 2 shared cores: one intra-op thread is ~5x faster than oversubscribing."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
