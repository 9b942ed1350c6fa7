"""EDM mechanics: preconditioning identities, sigma distribution, schedule, Heun sampler, EMA."""

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from empirical.models import edm

sigmas = st.floats(min_value=1e-3, max_value=100.0)
sigma_datas = st.floats(min_value=0.1, max_value=2.0)


@given(sigmas, sigma_datas)
def test_preconditioning_gives_unit_variance_input_and_target(sigma, sd):
    """Var(c_in x) = 1 and Var((x0 - c_skip x) / c_out) = 1 when Var(x0) = sd^2, x = x0 + sigma n."""
    c_skip, c_out, c_in, c_noise = edm.preconditioning(torch.tensor(sigma, dtype=torch.float64), sd)
    assert math.isclose(float(c_in ** 2 * (sd ** 2 + sigma ** 2)), 1.0, rel_tol=1e-9)
    target_var = ((1 - c_skip) ** 2 * sd ** 2 + c_skip ** 2 * sigma ** 2) / c_out ** 2
    assert math.isclose(float(target_var), 1.0, rel_tol=1e-9)
    # the loss weight makes the effective weight of F's regression 1 at every sigma
    assert math.isclose(float(edm.loss_weight(torch.tensor(sigma, dtype=torch.float64), sd) * c_out ** 2),
                        1.0, rel_tol=1e-9)
    assert math.isclose(float(c_noise), math.log(sigma) / 4, rel_tol=1e-9, abs_tol=1e-12)


def test_preconditioning_limits():
    """Small sigma: D ~ identity (c_skip -> 1, c_out -> 0); large sigma: D ~ F (c_skip -> 0)."""
    c_skip, c_out, _, _ = edm.preconditioning(torch.tensor([1e-6, 1e6], dtype=torch.float64))
    assert c_skip[0] > 1 - 1e-9 and c_out[0] < 1e-5
    assert c_skip[1] < 1e-9 and abs(c_out[1] - edm.SIGMA_DATA) < 1e-6


def test_sigma_distribution_is_lognormal():
    s = edm.sample_sigma(200_000, -1.2, 1.2, torch.Generator().manual_seed(0))
    assert abs(s.log().mean() + 1.2) < 0.02 and abs(s.log().std() - 1.2) < 0.02


def test_karras_schedule_endpoints_and_order():
    s = edm.karras_sigmas(10, 0.002, 80.0, 7.0)
    assert s.shape == (11,) and s[-1] == 0
    assert math.isclose(float(s[0]), 80.0, rel_tol=1e-5) and math.isclose(float(s[-2]), 0.002, rel_tol=1e-4)
    assert (s[1:] < s[:-1]).all()


def test_heun_with_exact_denoiser_solves_the_probability_flow_ode():
    """For x0 ~ N(0, s^2) the exact denoiser is D = s^2/(s^2+sigma^2) x and the ODE solution is
    x(0) = x(sigma_max) s / sqrt(s^2 + sigma_max^2); Heun must reach it, with error shrinking fast in
    the number of steps (2nd order)."""
    s, sigma_max = 0.7, 80.0
    noise = torch.randn(1000, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact_end = noise * sigma_max * s / math.sqrt(s ** 2 + sigma_max ** 2)

    def exact(x, sigma):
        return (s ** 2 / (s ** 2 + sigma ** 2))[:, None] * x

    errors = [float((edm.heun_sample(exact, noise, edm.karras_sigmas(n, sigma_max=sigma_max).double())
                     - exact_end).abs().max()) for n in (18, 100)]
    assert errors[1] < 0.01 * s and errors[1] < errors[0] / 5


def test_ema_update_and_decay():
    ema, param = [torch.zeros(3)], [torch.ones(3)]
    edm.ema_update(ema, param, 0.9)
    assert torch.allclose(ema[0], torch.full((3,), 0.1))
    assert edm.ema_decay(0, 32, 1000, 0.05) == 0.0  # ramp-up: no memory of the initialisation
    assert math.isclose(edm.ema_decay(10**6, 32, 1000, 0.05), 0.5 ** (32 / 1000))
