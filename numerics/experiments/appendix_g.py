"""``toy appendix_g``: exact-score composition of one-hot Gaussians (2502.04549 App. G).

**Eq. 17 (empty background).** Coordinates ``x ∈ R^d``; ``p_i = N(e_i, s² I)`` (one-hot mean at
index ``i``), empty background ``p_b = N(0, s² I)``, unconditional ``p_u = (1/d) Σ_i p_i``.
Composing ``{p_i : i ∈ S}`` with ``p_b`` satisfies factorized conditionals (coordinate ``i`` is
``p_i``'s block, the rest is background), so the composition is exactly ``N(1_S, s² I)``;
with ``p_u`` as background (the "Bayes"/CFG composition) the conditions fail.

**Eq. 18 (cluttered background).** Every coordinate of the background is an independent fair
coin flip ``0/1`` (blurred by ``s``): ``p_b = ⊗_j ½(N(0, s²) + N(1, s²))``; ``p_i`` sets
coordinate ``i`` to 1 and leaves the others cluttered. Now ``p_u = (1/d) Σ_i p_i`` is close to
``p_b`` (it differs only in the weight of each binary pattern: ``∝ |b|`` instead of uniform),
so the Bayes composition places the objects about as well as the true-background one (it
does thin out the clutter off ``S``: measured in docs/toy-experiments.md).

**Sampling.** Composition-operator sampling with exact scores: the composed denoiser
``Σ_{i∈S} D_i − (|S| − 1) D_b`` at every σ (``numerics.composition``), EDM Heun
probability-flow ODE from ``σ_max · N(0, I)``. Every model is kept as a product over
coordinates of one-coordinate mixtures (``numerics.blocks``); the Bayes background is the
mixture of the stacked ``p_i``. Nothing is expanded into eq. 18's ``2^d`` components.

**Success criterion (our choice, not the paper's).** Threshold every coordinate at ½.
Eq. 17: a sample succeeds when the thresholded vector *equals* the indicator ``1_S`` (objects
exactly at ``S``, nothing else). Eq. 18: a sample succeeds when every coordinate in ``S`` is on
(the other coordinates are background clutter, which the projective composition leaves as
coin flips; their on-rate is reported separately, ½ is the correct value). The set sizes
``k = 1..d`` use ``S_k`` = the first ``k`` of ``0, 2, 4, ..., 1, 3, 5, ...``, so ``S_4 = {0,2,4,6}``.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np

from numerics.experiments import Experiment, register
from numerics.experiments.common import add_common_arguments, matplotlib_headless, require, write_outputs

NAME = "appendix_g"
MAIN_SET = (0, 2, 4, 6)
EQUATIONS = ("eq17", "eq18")


@dataclass(frozen=True)
class Config:
    dim: int = 8
    component_std: float = 0.1
    num_samples: int = 128
    num_steps: int = 32
    sigma_max: float = 80.0
    equations: tuple = ("eq17", "eq18")
    sigma_min: float = 0.002


def validate(config: Config) -> None:
    require(7 <= config.dim <= 64, "--dim",
            f"must be in 7..64 (the main set {{0,2,4,6}} needs d >= 7), got {config.dim}")
    require(0 < config.component_std < 0.5, "--component-std",
            f"must be in (0, 0.5), got {config.component_std}")
    require(len(config.equations) >= 1 and set(config.equations) <= set(EQUATIONS), "--equations",
            f"must be a non-empty subset of {EQUATIONS}, got {config.equations}")
    require(config.num_samples >= 1, "--num-samples", f"must be >= 1, got {config.num_samples}")
    require(config.num_steps >= 2, "--num-steps", f"must be >= 2, got {config.num_steps}")
    require(0 < config.sigma_min < config.sigma_max, "--sigma-min/--sigma-max",
            f"need 0 < sigma_min < sigma_max, got {config.sigma_min}, {config.sigma_max}")


def set_order(dim: int) -> list[int]:
    """Indices in the order sets grow: evens then odds, so ``S_4 = {0, 2, 4, 6}``."""
    return list(range(0, dim, 2)) + list(range(1, dim, 2))


def coordinate_mixtures(config: Config, equation: str) -> tuple:
    """One-coordinate mixtures ``(on, off)``: the law of coordinate ``j`` under ``p_i`` for
    ``j = i`` (on) and ``j != i`` (off). Eq. 17: on ``N(1, s²)``, off ``N(0, s²)``; eq. 18: off
    is the coin flip ``½ N(0, s²) + ½ N(1, s²)``. Both get two components (duplicated where the
    law has one) so every model below has the same pytree structure and they can be stacked."""
    from numerics.gmm import isotropic_mixture

    off_means = {"eq17": [[0.0], [0.0]], "eq18": [[0.0], [1.0]]}[equation]
    half = np.array([0.5, 0.5])
    var = config.component_std ** 2
    return (isotropic_mixture(half, np.array([[1.0], [1.0]]), var),
            isotropic_mixture(half, np.array(off_means), var))


def product_model(on, off, dim: int, active: int | None):
    """``p_active`` (or the product background ``p_b`` for ``active=None``) as a
    ``numerics.blocks.BlockProduct`` of ``dim`` one-coordinate blocks: the ``2^dim``
    components of eq. 18's flat expansion are never built."""
    from numerics import blocks

    return blocks.block_product([([j], on if j == active else off) for j in range(dim)])


def families(config: Config) -> dict:
    """Per equation: ``components`` (the ``p_i`` stacked on a leading axis ``[d, ...]``) and
    ``background`` (the product background ``p_b``: empty for eq. 17, cluttered for eq. 18).
    The Bayes background ``p_u = (1/d) Σ_i p_i`` is the uniform mixture of the stacked ``p_i``
    (for eq. 18 this is the mixture over binary patterns with weight ``∝ |b|``)."""
    import jax
    import jax.numpy as jnp

    out = {}
    for equation, product_name in (("eq17", "empty"), ("eq18", "cluttered")):
        on, off = coordinate_mixtures(config, equation)
        models = [product_model(on, off, config.dim, i) for i in range(config.dim)]
        out[equation] = {"components": jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *models),
                         "background": product_model(on, off, config.dim, None),
                         "background_names": (product_name, "bayes")}
    return out


def background_denoiser(family: dict, name: str, dim: int):
    """Exact denoiser ``[B, d] -> [B, d]`` of the product background or of the Bayes one."""
    import jax.numpy as jnp

    from numerics.composition import mixture_of_models_denoiser, model_denoiser

    if name == "bayes":
        return mixture_of_models_denoiser(family["components"], jnp.full(dim, -np.log(dim)))
    return model_denoiser(family["background"])


def make_sampler(family: dict, background_name: str, config: Config):
    """jit-compiled ``(mask [d], x_init [B, d]) -> samples [B, d]`` for one background.

    The composed denoiser is ``Σ_i mask_i D_i − (Σ_i mask_i − 1) D_bg``
    (``numerics.composition``): the set ``S`` enters as a 0/1 mask so one compilation serves
    every set.
    """
    import jax
    import jax.numpy as jnp

    from numerics.composition import stacked_model_denoisers
    from numerics.sampling import edm_sigmas, heun_sample

    sigmas = edm_sigmas(config.num_steps, config.sigma_min, config.sigma_max)
    component_denoisers = stacked_model_denoisers(family["components"])      # -> [d, B, d]
    denoise_background = background_denoiser(family, background_name, config.dim)

    @jax.jit
    def sample(mask, x_init):
        def composed(x, sigma):
            return (jnp.tensordot(mask, component_denoisers(x, sigma), axes=1)
                    - (mask.sum() - 1.0) * denoise_background(x, sigma))

        return heun_sample(composed, x_init, sigmas)

    return sample


def score_samples(samples: np.ndarray, subset: list[int], equation: str) -> dict:
    """Success rate (criterion in the module doc) and per-coordinate on-rates."""
    on = samples > 0.5
    in_set = np.zeros(samples.shape[1], dtype=bool)
    in_set[subset] = True
    if equation == "eq17":
        success = np.all(on == in_set, axis=1)
    else:
        success = np.all(on[:, in_set], axis=1)
    off_set_on_rate = float(on[:, ~in_set].mean()) if (~in_set).any() else None
    return {"success_rate": float(success.mean()),
            "success_stderr": float(np.sqrt(success.mean() * (1 - success.mean()) / len(success))),
            "in_set_on_rate": float(on[:, in_set].mean()),
            "off_set_on_rate": off_set_on_rate}


def run_experiment(config: Config, seed: int) -> tuple[dict, dict]:
    """Sample every (equation, background, k); return (results JSON, example samples)."""
    import jax
    from tqdm import tqdm

    validate(config)
    order = set_order(config.dim)
    fams = families(config)
    key = jax.random.PRNGKey(seed)
    results = {"config": asdict(config), "seed": seed, "set_order": order, "main_set": list(MAIN_SET),
               "criterion": {"eq17": "thresholded sample (x > 1/2) equals the indicator of S",
                             "eq18": "every coordinate in S is on (x > 1/2); others are clutter"},
               "equations": {}}
    examples = {}
    jobs = [(eq, bg) for eq in config.equations for bg in fams[eq]["background_names"]]
    progress = tqdm(total=len(jobs) * config.dim, desc=NAME, file=sys.stderr, leave=False)
    for equation, background_name in jobs:
        fam = fams[equation]
        sample = make_sampler(fam, background_name, config)
        rows = []
        for k in range(1, config.dim + 1):
            subset = sorted(order[:k])
            mask = np.zeros(config.dim)
            mask[subset] = 1.0
            key, sub = jax.random.split(key)
            x_init = config.sigma_max * jax.random.normal(sub, (config.num_samples, config.dim))
            samples = np.asarray(sample(mask, x_init))
            row = {"k": k, "set": subset, **score_samples(samples, subset, equation),
                   "mean": samples.mean(axis=0).round(4).tolist()}
            rows.append(row)
            if tuple(subset) == MAIN_SET:
                examples[(equation, background_name)] = samples[:16]
                row["finite"] = bool(np.isfinite(samples).all())
            progress.update()
        results["equations"].setdefault(equation, {})[background_name] = rows
    progress.close()
    results["main_set_success"] = {
        eq: {bg: next(r["success_rate"] for r in rows if tuple(r["set"]) == MAIN_SET)
             for bg, rows in by_bg.items()}
        for eq, by_bg in results["equations"].items()}
    return results, examples


def make_figure(results: dict, examples: dict):
    plt = matplotlib_headless()
    titles = {"eq17": "eq. 17: one-hot means (empty vs Bayes background)",
              "eq18": "eq. 18: one-hot on cluttered background"}
    styles = {"empty": ("tab:blue", "o"), "cluttered": ("tab:blue", "o"), "bayes": ("tab:red", "s")}
    n_rows = len(results["equations"])
    fig, axes = plt.subplots(n_rows, 3, figsize=(13, 3.6 * n_rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1.3, 1, 1]})
    equations = list(results["equations"])
    for row, equation in enumerate(equations):
        ax = axes[row, 0]
        for background, rows in results["equations"][equation].items():
            color, marker = styles[background]
            ks = [r["k"] for r in rows]
            rates = np.array([r["success_rate"] for r in rows])
            errs = np.array([r["success_stderr"] for r in rows])
            label = "Bayes background p_u" if background == "bayes" else f"{background} background p_b"
            ax.errorbar(ks, rates, yerr=errs, color=color, marker=marker, label=label, capsize=2)
            if equation == "eq18":  # the clutter off S should stay a fair coin
                clutter = [(r["k"], r["off_set_on_rate"]) for r in rows if r["off_set_on_rate"] is not None]
                ax.plot(*zip(*clutter), color=color, marker=marker, ls=":", mfc="none",
                        label=f"{background}: on-rate off S (correct: 0.5)")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("k = |S| (number of composed conditionals)")
        ax.set_ylabel("success rate" if equation == "eq17" else "success rate / on-rate")
        ax.set_title(titles[equation], fontsize=10)
        ax.axvline(1.5, color="0.8", lw=0.8)
        ax.legend(fontsize=8, loc="center left")
        for col, background in enumerate(results["equations"][equation], start=1):
            ax = axes[row, col]
            samples = examples[(equation, background)]
            ax.imshow(samples, cmap="viridis", vmin=-0.3, vmax=1.3, aspect="auto")
            for i in MAIN_SET:
                ax.add_patch(plt.Rectangle((i - 0.5, -0.5), 1, len(samples), fill=False,
                                           edgecolor="white", lw=1.2, ls="--"))
            rate = results["main_set_success"][equation][background]
            ax.set_title(f"{background} background, S = {{0,2,4,6}}: success {rate:.2f}", fontsize=9)
            ax.set_xlabel("coordinate (dashed: in S)")
            ax.set_ylabel("sample")
            ax.set_xticks(range(samples.shape[1]))
    fig.suptitle("Composition-operator sampling with exact scores (2502.04549 App. G); "
                 "colour scale: coordinate value", fontsize=11)
    fig.tight_layout()
    return fig


def add_arguments(parser) -> None:
    add_common_arguments(parser, NAME)
    defaults = Config()
    parser.add_argument("--dim", type=int, default=defaults.dim, help="number of coordinates d")
    parser.add_argument("--component-std", type=float, default=defaults.component_std,
                        help="std s of every Gaussian component")
    parser.add_argument("--num-samples", type=int, default=defaults.num_samples, help="samples per set")
    parser.add_argument("--num-steps", type=int, default=defaults.num_steps, help="Heun steps")
    parser.add_argument("--sigma-max", type=float, default=defaults.sigma_max,
                        help=f"largest noise level of the sampler (default {defaults.sigma_max:g})")
    parser.add_argument("--equations", nargs="+", choices=EQUATIONS, default=list(defaults.equations),
                        help="which of App. G's equations to run (default: both)")


def config_from_args(args) -> Config:
    return Config(dim=args.dim, component_std=args.component_std, num_samples=args.num_samples,
                  num_steps=args.num_steps, sigma_max=args.sigma_max,
                  equations=tuple(dict.fromkeys(args.equations)))


def run(args) -> int:
    config = config_from_args(args)
    validate(config)
    results, examples = run_experiment(config, args.seed)
    paths = write_outputs(args.out, NAME, config, args.seed, results, make_figure(results, examples))
    for equation, by_bg in results["main_set_success"].items():
        summary = ", ".join(f"{bg} {rate:.2f}" for bg, rate in by_bg.items())
        print(f"{equation}: success rate composing S = {{0,2,4,6}}: {summary}")
    print(f"wrote {paths['json']} and {paths['figure']}")
    return 0


register(Experiment(NAME, "2502.04549 App. G eq. 17/18: empty vs Bayes vs cluttered background",
                    run, add_arguments))
