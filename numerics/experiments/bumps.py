"""``localcomp toy bumps``: exact-score length generalization on "bump images" (T3/T4).

An ``S x S`` grid (default 8 x 8, 1 channel) is tiled by ``(S/2)^2`` cells of 2 x 2 pixels;
each cell is a conditioner location with mask = its 4 pixels. Null block: a dim cell
(mean 0, std 0.1). Singleton block: a bump, a 2-component mixture of a full and a
"diagonal" 2 x 2 pattern of brightness 1 (std 0.1). The family is CPC by construction
(``families.cpc_family``, kept as a block product). For each K = 0..12 we draw random sets of
K locations, sample with the exact score of the set's CPC model (EDM Heun probability-flow
ODE from ``numerics.sampling``, 18 steps, sigma_max = 80 by default, init ``sigma_max N(0, I)``;
exact denoisers from ``numerics.composition``, eigen-decomposed once outside the sampler's
loop), and count objects: a cell is "on" if its mean intensity exceeds 0.5.
A sample succeeds if the on cells are exactly the requested locations. Control: the
composition operator with the Bayes background (mean of the singleton models).
"""

from __future__ import annotations

import sys

import numpy as np

from numerics.experiments import Experiment, register
from numerics.experiments.common import add_common_arguments, matplotlib_headless, require, write_outputs

NAME = "bumps"
NOISE_STD = 0.1
THRESHOLD = 0.5


def add_arguments(parser) -> None:
    add_common_arguments(parser, NAME)
    parser.add_argument("--size", type=int, default=8, help="grid side S, even (default 8)")
    parser.add_argument("--max-objects", type=int, default=12, help="largest K (default 12)")
    parser.add_argument("--samples", type=int, default=16, help="samples per K (default 16)")
    parser.add_argument("--steps", type=int, default=18, help="Heun steps (default 18)")
    parser.add_argument("--sigma-max", type=float, default=80.0,
                        help="largest noise level of the sampler (default 80, EDM's)")


def cell_masks(size: int) -> dict:
    """``{"r{i}c{j}": 4 pixel indices}`` for the 2 x 2 cells of an ``size x size`` grid."""
    masks = {}
    for i in range(size // 2):
        for j in range(size // 2):
            masks[f"r{i}c{j}"] = tuple(sorted((2 * i + a) * size + 2 * j + b for a in (0, 1) for b in (0, 1)))
    return masks


def bump_blocks(size: int):
    """``(masks, null block, bump block)``. The null block has the bump's component count (two
    identical components) so every set's model has the same pytree structure: one jit for all K."""
    from numerics.gmm import isotropic_mixture

    null = isotropic_mixture(np.array([0.5, 0.5]), np.zeros((2, 4)), NOISE_STD ** 2)
    bump = isotropic_mixture(np.array([0.5, 0.5]),
                             np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 0.6, 0.6, 1.0]]), NOISE_STD ** 2)
    return cell_masks(size), null, bump


def on_cells(images: np.ndarray, masks: dict) -> list:
    """Per image the set of cell ids whose mean intensity exceeds ``THRESHOLD``."""
    return [{c for c, pix in masks.items() if img[list(pix)].mean() > THRESHOLD} for img in images]


def make_samplers(masks: dict, null, bump, pixels: int, sigmas):
    """``(sample_null_background, sample_bayes)``, both jit-compiled Heun samplers.

    ``sample_null_background(spec, x_init [B, pixels]) -> [B, pixels]`` samples the exact
    CPC model of one set, given in ``numerics.composition.spectral_form`` (a pytree
    argument: one compilation for every K, all sets' models share one structure).
    ``sample_bayes(selected [C], x_init) -> [B, pixels]`` uses the composition operator with the
    Bayes background ``p_u = (1/C) Σ_c p_c`` (the uniform mixture of the singleton models, a
    mixture of block products, never expanded):

        D(x, σ) = Σ_c selected_c D_c(x, σ) − (Σ_c selected_c − 1) D_u(x, σ).

    Every eigen-decomposition happens here, when the denoisers are built: no LAPACK call
    runs inside the samplers' ``lax.scan`` (docs/toy-experiments.md, "Why eq. 18 used to hang").
    """
    import jax
    import jax.numpy as jnp

    from numerics import families as F
    from numerics.composition import mixture_of_models_denoiser, spectral_denoiser, stacked_model_denoisers
    from numerics.sampling import heun_sample

    ids = sorted(masks)
    singles = [F.cpc_family(pixels, 1, masks, {c: null for c in ids}, {c: bump for c in ids},
                            None, sets=[frozenset([c])]).models[frozenset([c])] for c in ids]
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *singles)
    singleton_denoisers = stacked_model_denoisers(stacked)                     # -> [C, B, d]
    bayes_denoiser = mixture_of_models_denoiser(stacked, jnp.full(len(ids), -np.log(len(ids))))

    @jax.jit
    def sample_null_background(spec, x_init):
        return heun_sample(spectral_denoiser(spec), x_init, sigmas)

    @jax.jit
    def sample_bayes(selected, x_init):
        def composed(x, sigma):
            return (jnp.tensordot(selected, singleton_denoisers(x, sigma), axes=1)
                    - (selected.sum() - 1.0) * bayes_denoiser(x, sigma))
        return heun_sample(composed, x_init, sigmas)

    return sample_null_background, sample_bayes


def run(args) -> int:
    require(args.size >= 2 and args.size % 2 == 0, "--size", "must be an even integer >= 2")
    n_cells = (args.size // 2) ** 2
    require(0 <= args.max_objects <= n_cells, "--max-objects", f"must be in [0, {n_cells}]")
    require(args.samples >= 1, "--samples", "must be >= 1")
    require(args.steps >= 2, "--steps", "must be >= 2")
    require(args.sigma_max > 0.002, "--sigma-max", "must be > 0.002 (the smallest noise level)")
    import jax
    import jax.numpy as jnp
    from tqdm import tqdm

    from numerics import families as F
    from numerics.composition import spectral_form
    from numerics.sampling import edm_sigmas

    masks, null, bump = bump_blocks(args.size)
    ids = sorted(masks)
    pixels = args.size ** 2
    sigmas = edm_sigmas(args.steps, sigma_max=args.sigma_max)
    sample_with, sample_bayes = make_samplers(masks, null, bump, pixels, sigmas)

    rng = np.random.default_rng(args.seed)
    key = jax.random.PRNGKey(args.seed)
    rows, examples = [], {}
    for K in tqdm(range(args.max_objects + 1), desc=NAME):
        J = frozenset(rng.choice(ids, size=K, replace=False).tolist())
        fam_J = F.cpc_family(pixels, 1, masks, {c: null for c in ids}, {c: bump for c in ids},
                             None, sets=[J])
        key, sub = jax.random.split(key)
        x0 = sigmas[0] * jax.random.normal(sub, (args.samples, pixels))
        images = np.asarray(sample_with(spectral_form(fam_J.models[J]), x0))
        found = on_cells(images, masks)
        counts = [len(f) for f in found]
        success = float(np.mean([f == set(J) for f in found]))
        selected = jnp.asarray([1.0 if c in J else 0.0 for c in ids])
        found_bayes = on_cells(np.asarray(sample_bayes(selected, x0)), masks)
        rows.append({"K": K, "conditioners": sorted(J), "success_rate": success,
                     "mean_count": float(np.mean(counts)), "counts": counts,
                     "bayes_success_rate": float(np.mean([f == set(J) for f in found_bayes])),
                     "bayes_mean_count": float(np.mean([len(f) for f in found_bayes]))})
        examples[K] = images[0].reshape(args.size, args.size)
    plt = matplotlib_headless()
    fig = plt.figure(figsize=(11, 4.2))
    grid = fig.add_gridspec(2, 6, wspace=0.3, hspace=0.35)
    ax = fig.add_subplot(grid[:, :3])
    ax.plot([r["K"] for r in rows], [r["success_rate"] for r in rows], "o-",
            label="null background (= exact CPC score)")
    ax.plot([r["K"] for r in rows], [r["bayes_success_rate"] for r in rows], "s--",
            label="Bayes background (unconditional)")
    ax.legend(fontsize=8)
    ax.set_xlabel("requested objects K")
    ax.set_ylabel(f"success rate ({args.samples} samples per K)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("exact CPC-composed score: length generalization")
    shown = [K for K in (0, 2, 4, 6, 9, 12) if K in examples]
    for n, K in enumerate(shown):
        sub = fig.add_subplot(grid[n // 3, 3 + n % 3])
        sub.imshow(examples[K], cmap="gray", vmin=-0.3, vmax=1.3)
        sub.set_title(f"null-bg sample, K={K}", fontsize=8)
        sub.axis("off")
    results = {"rows": rows, "size": args.size, "threshold": THRESHOLD, "sigmas": np.asarray(sigmas).tolist()}
    config = {"size": args.size, "max_objects": args.max_objects, "samples": args.samples, "steps": args.steps,
              "sigma_max": args.sigma_max}
    paths = write_outputs(args.out, NAME, config, args.seed, results, fig)
    for r in rows:
        print(f"K={r['K']:2d} success {r['success_rate']:.2f} mean count {r['mean_count']:.2f}; "
              f"Bayes success {r['bayes_success_rate']:.2f} mean count {r['bayes_mean_count']:.2f}")
    print(f"wrote {paths['figure']}", file=sys.stderr)
    return 0


register(Experiment(NAME, "bump images: exact-score length generalization, K = 0..12", run, add_arguments))
