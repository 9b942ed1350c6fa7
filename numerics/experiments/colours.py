"""``toy colours``: which CLEVR colours compose with yellow on a grey background (SCIENCE.md §5).

**Model (ours; the paper gives only the qualitative example).** One pixel, its three RGB
channels (scaled to ``[0, 1]``) are the coordinates. Each colour ``c`` is a Gaussian
``p_c = N(c, s² I_3)``; the background is a grey ``p_b = N(b·1, s² I_3)`` of level ``b``.
Composing yellow ``y`` with colour ``c`` uses the composition operator with that background,
``C[p_b; p_y, p_c]`` (2502.04549 Def. 5.1), sampled with exact scores (annealed composed
denoiser ``D_y + D_c − D_b``, EDM Heun ODE). For equal isotropic covariances the composition
of the noised Gaussians is the noised composition, so the sampler targets exactly
``N(y + c − b·1, s² I_3)``.

**Success criterion (ours).** A projective composition (Def. 4.1) shows yellow through
yellow's window and ``c`` through ``c``'s window; with one pixel the windows are channels. We
give each channel to whichever of yellow / ``c`` departs more from the background there
(the best disjoint windows), so the target colour is ``t_ch = y_ch`` if
``|y_ch − b| ≥ |c_ch − b|`` else ``c_ch``. A sample succeeds when every channel is within
``tolerance`` of ``t``. The composed mean misses ``t`` by the *leakage*
``max_ch min(|y_ch − b|, |c_ch − b|)`` (closed form, reported too): composition works when the
two mean shifts live on disjoint channels (factorized conditionals; T8's orthogonality).
A colour "composes with yellow" at level ``b`` when its success rate is at least ½.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np

from numerics.experiments import Experiment, register
from numerics.experiments.common import add_common_arguments, matplotlib_headless, require, write_outputs

NAME = "colours"

# CLEVR's eight colours, RGB 0-255: data copied from clevr-dataset-gen's
# image_generation/data/properties.json ("colors"), as listed in SCIENCE.md §7.
CLEVR_COLOURS = {
    "gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
    "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
BASE = "yellow"
# SCIENCE.md §5's claim: yellow composes with blue, cyan and magenta (CLEVR's "purple"),
# not with brown, gray, green, red.
CLAIMED_COMPOSING = frozenset({"blue", "cyan", "purple"})


@dataclass(frozen=True)
class Config:
    colour_std: float = 0.03
    tolerance: float = 0.15
    num_levels: int = 41
    num_samples: int = 256
    num_steps: int = 32
    sigma_max: float = 80.0
    sigma_min: float = 0.002
    sensitivity_tolerances: tuple = (0.1, 0.15, 0.2)


def validate(config: Config) -> None:
    require(0 < config.colour_std <= 0.2, "--colour-std", f"must be in (0, 0.2], got {config.colour_std}")
    require(0 < config.tolerance < 1, "--tolerance", f"must be in (0, 1), got {config.tolerance}")
    require(config.num_levels >= 2, "--levels", f"must be >= 2, got {config.num_levels}")
    require(config.num_samples >= 1, "--num-samples", f"must be >= 1, got {config.num_samples}")
    require(config.num_steps >= 2, "--num-steps", f"must be >= 2, got {config.num_steps}")
    require(config.sigma_max > config.sigma_min, "--sigma-max", f"must exceed {config.sigma_min}")


def rgb(name: str) -> np.ndarray:
    """CLEVR colour ``name`` as ``[3]`` floats in ``[0, 1]``."""
    return np.asarray(CLEVR_COLOURS[name], dtype=float) / 255.0


def composition_target(base: np.ndarray, other: np.ndarray, grey: float) -> np.ndarray:
    """``[3]``: per channel the value of whichever colour departs more from the grey ``grey``."""
    return np.where(np.abs(base - grey) >= np.abs(other - grey), base, other)


def leakage(base: np.ndarray, other: np.ndarray, grey: float) -> float:
    """Largest channel error of the composed mean ``base + other − grey`` against the target:
    ``max_ch min(|base_ch − grey|, |other_ch − grey|)`` (0 iff the shifts use disjoint channels)."""
    return float(np.max(np.minimum(np.abs(base - grey), np.abs(other - grey))))


def shift_cosine(base: np.ndarray, other: np.ndarray, grey: float) -> float:
    """``|cos|`` between the mean shifts ``base − grey`` and ``other − grey`` (T8's quantity)."""
    a, b = base - grey, other - grey
    return float(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def make_sampler(config: Config):
    """``(base [3], other [3], grey) -> [B, 3]`` given ``x_init``: exact-score sampling of
    ``C[p_b; p_base, p_other]`` with isotropic Gaussians of std ``colour_std``. The models go
    into one jit-compiled Heun loop as arguments (in ``spectral_form``, built outside it)."""
    import jax
    import jax.numpy as jnp

    from numerics import gmm
    from numerics.composition import composed_denoiser, spectral_denoiser, spectral_form
    from numerics.sampling import edm_sigmas, heun_sample

    sigmas = edm_sigmas(config.num_steps, config.sigma_min, config.sigma_max)
    cov = config.colour_std ** 2 * np.eye(3)

    @jax.jit
    def heun(background, components, x_init):
        denoise = composed_denoiser(spectral_denoiser(background),
                                    [spectral_denoiser(c) for c in components])
        return heun_sample(denoise, x_init, sigmas)

    def sample(base, other, grey, x_init):
        model = lambda mean: spectral_form(gmm.gaussian(mean, cov))  # noqa: E731
        return heun(model(grey * jnp.ones(3)), (model(base), model(other)), x_init)

    return sample


def holding_ranges(levels: np.ndarray, holds: np.ndarray) -> list:
    """Maximal runs ``[first, last]`` of grid levels where ``holds`` is True."""
    ranges, start = [], None
    for level, ok in zip(levels, holds):
        if ok and start is None:
            start = level
        if ok:
            last = level
        if not ok and start is not None:
            ranges.append([round(float(start), 6), round(float(last), 6)])
            start = None
    if start is not None:
        ranges.append([round(float(start), 6), round(float(last), 6)])
    return ranges


def run_experiment(config: Config, seed: int) -> dict:
    import jax
    from tqdm import tqdm

    validate(config)
    sample = make_sampler(config)
    base = rgb(BASE)
    others = [c for c in CLEVR_COLOURS if c != BASE]
    levels = np.linspace(0.0, 1.0, config.num_levels)
    key = jax.random.PRNGKey(seed)
    per_colour = {c: {"success_rate": [], "leakage": [], "shift_cosine": [], "mean_error": []}
                  for c in others}
    for grey in tqdm(levels, desc=NAME, file=sys.stderr, leave=False):
        for name in others:
            other = rgb(name)
            key, sub = jax.random.split(key)
            x_init = config.sigma_max * jax.random.normal(sub, (config.num_samples, 3))
            samples = np.asarray(sample(base, other, float(grey), x_init))
            target = composition_target(base, other, grey)
            success = np.all(np.abs(samples - target) <= config.tolerance, axis=1)
            row = per_colour[name]
            row["success_rate"].append(float(success.mean()))
            row["leakage"].append(leakage(base, other, grey))
            row["shift_cosine"].append(shift_cosine(base, other, grey))
            # sampler check: the composed law is N(base + other - grey, s^2 I) exactly
            row["mean_error"].append(float(np.max(np.abs(samples.mean(0) - (base + other - grey)))))
    composing = [frozenset(c for c in others if per_colour[c]["success_rate"][i] >= 0.5)
                 for i in range(len(levels))]
    holds = np.array([s == CLAIMED_COMPOSING for s in composing])
    sensitivity = {}
    for tol in config.sensitivity_tolerances:  # closed form: composed mean within tol of target
        by_level = [frozenset(c for c in others if leakage(base, rgb(c), g) <= tol) for g in levels]
        sensitivity[str(tol)] = holding_ranges(levels, np.array([s == CLAIMED_COMPOSING for s in by_level]))
    return {
        "config": asdict(config), "seed": seed, "base": BASE,
        "claimed_composing": sorted(CLAIMED_COMPOSING), "grey_levels": levels.round(6).tolist(),
        "colours": per_colour,
        "composing_by_level": [sorted(s) for s in composing],
        "claim_holds_by_level": holds.tolist(),
        "claim_holds_ranges": holding_ranges(levels, holds),
        "claim_holds_ranges_closed_form_by_tolerance": sensitivity,
        "max_sampler_mean_error": max(max(r["mean_error"]) for r in per_colour.values()),
        "criterion": "every channel within tolerance of the target (per channel the colour that "
                     "departs more from the grey); a colour composes at a level if success >= 1/2",
    }


def make_figure(results: dict):
    plt = matplotlib_headless()
    levels = np.asarray(results["grey_levels"])
    fig, (ax, ax_leak, ax_swatch) = plt.subplots(1, 3, figsize=(15, 4.3),
                                                 gridspec_kw={"width_ratios": [1.2, 1.2, 1]})
    for lo, hi in results["claim_holds_ranges"]:
        for a in (ax, ax_leak):
            a.axvspan(lo - 0.0125, hi + 0.0125, color="0.9", zorder=0)
    for name, row in results["colours"].items():
        style = "-" if name in results["claimed_composing"] else "--"
        ax.plot(levels, row["success_rate"], style, color=rgb(name), lw=1.8, label=name)
        ax_leak.plot(levels, row["leakage"], style, color=rgb(name), lw=1.8, label=name)
    tol = results["config"]["tolerance"]
    ax_leak.axhline(tol, color="k", lw=0.8, ls=":")
    ax_leak.text(0.01, tol + 0.01, f"tolerance {tol:g}", fontsize=8)
    ax.set_xlabel("background grey level b")
    ax.set_ylabel("success rate of C[p_b; p_yellow, p_c]")
    ax.set_title("composing yellow with each CLEVR colour\n(solid: SCIENCE.md says composes; "
                 "grey band: its partition holds)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax_leak.set_xlabel("background grey level b")
    ax_leak.set_ylabel("leakage max_ch min(|y-b|, |c-b|)")
    ax_leak.set_title("closed-form leakage of the composed mean", fontsize=9)
    # swatches at the level where the claim holds best (or b = 0.5 if nowhere)
    holding = [i for i, ok in enumerate(results["claim_holds_by_level"]) if ok]
    index = holding[len(holding) // 2] if holding else len(levels) // 2
    grey = levels[index]
    names = list(results["colours"])
    base = rgb(results["base"])
    image = np.ones((len(names), 4, 3)) * grey
    for r, name in enumerate(names):
        image[r, 0], image[r, 1] = base, rgb(name)
        image[r, 2] = np.clip(base + rgb(name) - grey, 0, 1)
        image[r, 3] = composition_target(base, rgb(name), grey)
    ax_swatch.imshow(image, aspect="auto")
    ax_swatch.set_xticks(range(4), ["yellow", "c", "composed\nmean", "target"], fontsize=8)
    ax_swatch.set_yticks(range(len(names)),
                         [f"{n} ({results['colours'][n]['success_rate'][index]:.2f})" for n in names],
                         fontsize=8)
    ax_swatch.set_title(f"b = {grey:.3f} (success rate in brackets)", fontsize=9)
    fig.tight_layout()
    return fig


def add_arguments(parser) -> None:
    add_common_arguments(parser, NAME)
    d = Config()
    parser.add_argument("--colour-std", type=float, default=d.colour_std, help="std s of every colour model")
    parser.add_argument("--tolerance", type=float, default=d.tolerance,
                        help="per-channel distance to the target counted as success")
    parser.add_argument("--levels", type=int, default=d.num_levels, help="grey levels in [0, 1]")
    parser.add_argument("--num-samples", type=int, default=d.num_samples, help="samples per (colour, level)")
    parser.add_argument("--num-steps", type=int, default=d.num_steps, help="Heun steps")


def run(args) -> int:
    config = Config(colour_std=args.colour_std, tolerance=args.tolerance, num_levels=args.levels,
                    num_samples=args.num_samples, num_steps=args.num_steps)
    validate(config)
    results = run_experiment(config, args.seed)
    paths = write_outputs(args.out, NAME, config, args.seed, results, make_figure(results))
    print(f"SCIENCE.md partition (yellow composes with {sorted(CLAIMED_COMPOSING)} only) holds for "
          f"grey levels {results['claim_holds_ranges'] or 'none'} (tolerance {config.tolerance:g})")
    print(f"wrote {paths['json']} and {paths['figure']}")
    return 0


register(Experiment(NAME, "which CLEVR colours compose with yellow on a grey background", run, add_arguments))
