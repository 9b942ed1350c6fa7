"""Exact score + full score Jacobian: numerics (JAX, closed form, block product) versus the
plain NumPy/SciPy code a user would write (``scipy.stats.multivariate_normal`` log-densities,
central finite differences for the score and for its Jacobian).

Setup (defaults): 4096 points drawn from the model, n = 64 pixels split into 3 blocks, each
block a 5-component Gaussian mixture with full covariances (125 components if expanded).
Both implementations run in the same process on the same points; the SciPy baseline is
timed on the first ``--baseline-points`` of them (it costs 4 n^2 density evaluations per
point) and compared by throughput (points per second). Writes
``benchmarks/results/exact_scores.json``.

    python benchmarks/bench_exact_scores.py [--points 4096] [--baseline-points 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def build_model(seed: int, pixels: int, n_blocks: int, components: int):
    from numerics import blocks, gmm

    rng = np.random.default_rng(seed)
    parts = []
    for coords in np.array_split(np.arange(pixels), n_blocks):
        d = len(coords)
        covs = []
        for _ in range(components):
            a = rng.normal(size=(d, d)) / np.sqrt(d)
            covs.append(0.05 * (a @ a.T) + 0.05 * np.eye(d))
        w = rng.uniform(0.5, 1.5, components)
        parts.append((coords, gmm.GaussianMixture(w / w.sum(), rng.normal(size=(components, d)),
                                                  np.stack(covs))))
    return blocks.block_product(parts)


def scipy_log_density(model, x: np.ndarray) -> np.ndarray:
    """``log p(x)`` for ``x [P, d]``: sum over blocks of log sum_k w_k N(x_b; mu_k, S_k)."""
    from scipy import stats
    from scipy.special import logsumexp

    total = np.zeros(x.shape[0])
    for idx, m in zip(model.indices, model.mixtures):
        w, mu, S = (np.asarray(t) for t in m)
        logs = np.stack([np.log(w[k]) + stats.multivariate_normal(mu[k], S[k]).logpdf(x[:, idx])
                         for k in range(len(w))])
        total += logsumexp(logs, axis=0)
    return total


def scipy_score(model, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of the log-density, ``[P, d]``."""
    out = np.empty_like(x)
    for i in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[i] = h
        out[:, i] = (scipy_log_density(model, x + e) - scipy_log_density(model, x - e)) / (2 * h)
    return out


def scipy_jacobian(model, x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Central differences of the (finite-difference) score, ``[P, d, d]``."""
    out = np.empty(x.shape + (x.shape[1],))
    for k in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[k] = h
        out[:, :, k] = (scipy_score(model, x + e) - scipy_score(model, x - e)) / (2 * h)
    return out


def main(argv=None) -> int:
    import jax

    from localcomp.provenance import write_json_atomic
    from numerics import blocks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--baseline-points", type=int, default=64)
    parser.add_argument("--pixels", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--components", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/exact_scores.json"))
    args = parser.parse_args(argv)
    if not 1 <= args.baseline_points <= args.points:
        parser.error("--baseline-points must be in [1, --points]")

    model = build_model(args.seed, args.pixels, args.blocks, args.components)
    x = blocks.sample(model, jax.random.PRNGKey(args.seed), args.points)

    def exact(points):
        s, H = blocks.batch_score(model, points), blocks.batch_hessian(model, points)
        return jax.block_until_ready(s), jax.block_until_ready(H)

    start = time.perf_counter()
    exact(x)
    first_call = time.perf_counter() - start          # includes jit compilation
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        s_exact, H_exact = exact(x)
        timings.append(time.perf_counter() - start)
    jax_seconds = min(timings)

    xb = np.asarray(x[: args.baseline_points])
    start = time.perf_counter()
    s_fd = scipy_score(model, xb)
    H_fd = scipy_jacobian(model, xb)
    scipy_seconds = time.perf_counter() - start

    jax_rate = args.points / jax_seconds
    scipy_rate = args.baseline_points / scipy_seconds
    s_ref, H_ref = np.asarray(s_exact[: args.baseline_points]), np.asarray(H_exact[: args.baseline_points])
    result = {
        "setup": {"points": args.points, "baseline_points": args.baseline_points,
                  "pixels": args.pixels, "blocks": args.blocks,
                  "components_per_block": args.components, "seed": args.seed,
                  "device": str(jax.devices()[0])},
        "jax_seconds": jax_seconds, "jax_first_call_seconds_incl_compile": first_call,
        "jax_points_per_second": jax_rate,
        "scipy_seconds": scipy_seconds, "scipy_points_per_second": scipy_rate,
        "speedup": jax_rate / scipy_rate,
        "speedup_incl_compile": (args.points / first_call) / scipy_rate,
        "fd_score_max_rel_error": float(np.abs(s_fd - s_ref).max() / np.abs(s_ref).max()),
        "fd_jacobian_max_rel_error": float(np.abs(H_fd - H_ref).max() / np.abs(H_ref).max()),
    }
    write_json_atomic(args.out, result)
    print(f"JAX exact: {jax_rate:,.0f} points/s ({jax_seconds:.3f} s for {args.points}; first call "
          f"{first_call:.2f} s incl. compile); SciPy FD: {scipy_rate:,.2f} points/s; speedup "
          f"{result['speedup']:,.0f}x ({result['speedup_incl_compile']:,.0f}x incl. compile)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
