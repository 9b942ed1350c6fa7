"""``toy feature_space``: a CPC family in features ``z = A x`` seen from pixel space (T6, T7).

**Family.** ``numerics.checks.base_family(seed)``: exactly CPC in ``z`` (7 coordinates, masks
``a = {0,1}``, ``b = {2,3}``, ``c = {4}``, background ``{5,6}``, two-component Gaussian
mixtures per block), flattened. Pixel space is ``x = A^{-1} z``, so ``p(x|c) = q(Ax|c)|det A|``
(again Gaussian mixtures, exact scores). Diffusion runs in pixel space: ``x_σ = x + σ ε``.

**Transforms ``A`` (ours).** identity; a random orthogonal matrix (QR of a Gaussian matrix);
shears ``I + h U`` with ``U`` the first super-diagonal (``det A = 1``, mixes neighbouring
coordinates, hence blocks) for a few ``h``.

**Measured per A and σ.**

* *feature-view locality*: the pixel-space noised family pushed to ``z``. Its covariances are
  ``Σ_z + σ² A Aᵀ``: for orthogonal ``A`` this is ``q_σ`` itself (noise commutes with ``A``,
  T6) and stays CPC; otherwise the noise is correlated across ``z``-blocks. We report the
  ``numerics.locality`` measures (pixel-locality = cross-block Hessian, conditional locality,
  CPC gap) in ``z`` coordinates.
* *pixel-space conditional locality* (T7): the same measures in ``x`` coordinates; a block
  mixing ``A`` makes every pixel feel conditioners even though the family is CPC in ``z``.
* *composition error*: for ``J = {a, b, c}``, the annealed composed score in pixel space
  ``Σ_j s_σ(x|{c_j}) − 2 s_σ(x|∅)`` against the true score of the noised target
  ``p_σ(x|c_J)``, relative, max over points drawn from ``p_σ(x|c_J)``. Equivariance (T6) makes
  it 0 at σ = 0 for any ``A``; with noise it is 0 for orthogonal ``A`` only.
* *sampling*: EDM Heun samples of the annealed composition in pixel space, mapped to ``z``;
  mean and covariance error against the exact target moments, next to the same sampler run
  with the exact target score (sampler + Monte-Carlo baseline).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import asdict, dataclass, replace

import numpy as np

from numerics.experiments import Experiment, register
from numerics.experiments.common import add_common_arguments, matplotlib_headless, require, write_outputs

NAME = "feature_space"
COMPOSED_SET = ("a", "b", "c")


@dataclass(frozen=True)
class Config:
    shears: tuple = (0.5, 1.0, 2.0)
    sigmas: tuple = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    num_points: int = 32
    component_scales: tuple = (1.0, 0.1, 0.01)
    num_samples: int = 2048
    num_steps: int = 32
    sigma_max: float = 80.0
    sigma_min: float = 0.002


def validate(config: Config) -> None:
    require(len(config.shears) >= 1 and all(h > 0 for h in config.shears), "--shears",
            f"need at least one shear and every shear > 0, got {config.shears}")
    require(len(config.sigmas) >= 2 and all(s > 0 for s in config.sigmas), "--sigmas",
            f"need >= 2 noise levels, all > 0, got {config.sigmas}")
    require(len(config.component_scales) >= 1 and all(0 < c <= 1 for c in config.component_scales),
            "--component-scales", f"need values in (0, 1], got {config.component_scales}")
    require(config.num_points >= 2, "--points", f"must be >= 2, got {config.num_points}")
    require(config.num_samples >= 2, "--num-samples", f"must be >= 2, got {config.num_samples}")
    require(config.num_steps >= 2, "--num-steps", f"must be >= 2, got {config.num_steps}")


def transforms(dim: int, shears, seed: int) -> dict:
    """``name -> A [dim, dim]``: identity, a random orthogonal matrix, ``I + h U`` per shear."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    out = {"identity": np.eye(dim), "orthogonal": q * np.sign(np.diag(r))}
    for h in shears:
        out[f"shear {h:g}"] = np.eye(dim) + h * np.eye(dim, k=1)
    return out


def feature_family():
    """The family that is CPC in ``z`` (flat mixtures)."""
    from numerics.checks import base_family, flat

    return flat(base_family(0))


def noised_family(family, sigma: float):
    from numerics import blocks

    return replace(family, models={J: blocks.noised(m, sigma) for J, m in family.models.items()})


def mapped(family, M: np.ndarray):
    """Family of ``M y`` where ``y`` follows ``family`` (flat mixtures)."""
    from numerics.checks import pushforward_family

    return pushforward_family(family, np.linalg.inv(M))


def with_scaled_covariances(family, scale: float):
    """Every component covariance multiplied by ``scale`` (means unchanged): ``scale → 0`` is
    the singular limit of point-mass components."""
    return replace(family, models={J: m._replace(covs=m.covs * scale) for J, m in family.models.items()})


def composition_error(family_x, sigma: float, key, n_points: int) -> float:
    """Relative error of the annealed composed pixel-space score for ``COMPOSED_SET``."""
    import jax.numpy as jnp

    from numerics import blocks
    from numerics.families import EMPTY

    models = {J: blocks.noised(m, sigma) for J, m in family_x.models.items()}
    J = frozenset(COMPOSED_SET)
    x = blocks.sample(models[J], key, n_points)
    target = blocks.batch_score(models[J], x)
    composed = (sum(blocks.batch_score(models[frozenset([c])], x) for c in COMPOSED_SET)
                - (len(COMPOSED_SET) - 1) * blocks.batch_score(models[EMPTY], x))
    scale = float(jnp.sqrt(jnp.mean(jnp.sum(target ** 2, axis=1))))
    return float(jnp.max(jnp.linalg.norm(composed - target, axis=1))) / scale


def mixture_moments(gm) -> tuple:
    """Mean ``[d]`` and covariance ``[d, d]`` of a ``GaussianMixture``."""
    w, mu, cov = (np.asarray(a) for a in gm)
    mean = w @ mu
    second = np.einsum("k,kij->ij", w, cov + np.einsum("ki,kj->kij", mu, mu))
    return mean, second - np.outer(mean, mean)


@functools.lru_cache(maxsize=None)
def _heun():
    """jit-compiled ``(background, components, x_init, sigmas) -> samples``: Heun sampling of
    the annealed composition of models in ``spectral_form`` (arguments, so one compilation
    per structure); ``components`` a tuple, ``background=None`` for a single model."""
    import jax

    from numerics.composition import composed_denoiser, spectral_denoiser
    from numerics.sampling import heun_sample

    @jax.jit
    def heun(background, components, x_init, sigmas):
        if background is None:
            denoise = spectral_denoiser(components[0])
        else:
            denoise = composed_denoiser(spectral_denoiser(background),
                                        [spectral_denoiser(c) for c in components])
        return heun_sample(denoise, x_init, sigmas)

    return heun


def sampling_errors(family_x, A: np.ndarray, config: Config, key) -> dict:
    """Moment errors in ``z`` of pixel-space samples: annealed composition vs exact target score."""
    import jax

    from numerics.composition import spectral_form
    from numerics.families import EMPTY
    from numerics.sampling import edm_sigmas

    sigmas = edm_sigmas(config.num_steps, config.sigma_min, config.sigma_max)
    J = frozenset(COMPOSED_SET)
    heun = _heun()
    x_init = config.sigma_max * jax.random.normal(key, (config.num_samples, A.shape[0]))
    singles = tuple(spectral_form(family_x.models[frozenset([c])]) for c in COMPOSED_SET)
    samples = {
        "composition": heun(spectral_form(family_x.models[EMPTY]), singles, x_init, sigmas),
        "exact target score": heun(None, (spectral_form(family_x.models[J]),), x_init, sigmas),
    }
    mean, cov = mixture_moments(mapped(family_x, A).models[J])
    out = {}
    for name, x in samples.items():
        z = np.asarray(x) @ A.T
        out[name] = {
            "mean_error": float(np.linalg.norm(z.mean(0) - mean) / np.sqrt(np.trace(cov))),
            "cov_error": float(np.linalg.norm(np.cov(z.T) - cov) / np.linalg.norm(cov)),
            "finite": bool(np.isfinite(z).all()),
        }
    return out


def run_experiment(config: Config, seed: int) -> dict:
    import jax
    from tqdm import tqdm

    from numerics.locality import TOLERANCE, measure_at_sigma

    validate(config)
    fam_z = feature_family()
    dim = fam_z.dim
    keys = iter(jax.random.split(jax.random.PRNGKey(seed), 4096))
    results = {"config": asdict(config), "seed": seed, "tolerance": TOLERANCE, "transforms": {}}
    measures = ("pixel_locality_violation", "conditional_locality_violation", "cpc_gap")
    mats = transforms(dim, config.shears, seed)
    progress = tqdm(total=len(mats) * (len(config.sigmas) + 1), desc=NAME, file=sys.stderr, leave=False)
    for name, A in mats.items():
        fam_x = mapped(fam_z, np.linalg.inv(A))          # x = A^{-1} z
        rows = []
        for sigma in config.sigmas:
            feature_view = mapped(noised_family(fam_x, sigma), A)   # z-view of the x-noised family
            rz = measure_at_sigma(feature_view, 0.0, next(keys), config.num_points)
            rx = measure_at_sigma(fam_x, sigma, next(keys), config.num_points)
            rows.append({"sigma": sigma,
                         "feature_view": {m: rz[m] for m in measures},
                         "pixel_space": {m: rx[m] for m in measures},
                         "composition_error": composition_error(fam_x, sigma, next(keys), config.num_points)})
            progress.update()
        results["transforms"][name] = {
            "A": np.round(A, 6).tolist(),
            "orthogonality_defect": float(np.linalg.norm(A @ A.T - np.eye(dim))),
            "per_sigma": rows,
            "composition_error_sigma0": composition_error(fam_x, 0.0, next(keys), config.num_points),
            "sampling": sampling_errors(fam_x, A, config, next(keys)),
        }
        progress.update()
    progress.close()
    # Towards Lemma 7.2: the same shear with ever narrower components (singular limit)
    shear = sorted(config.shears)[len(config.shears) // 2]
    A = mats[f"shear {shear:g}"]
    results["narrowing"] = {"transform": f"shear {shear:g}", "sigmas": list(config.sigmas), "curves": {}}
    for scale in config.component_scales:
        fam_x = mapped(with_scaled_covariances(fam_z, scale), np.linalg.inv(A))
        smallest_var = float(min(np.min(np.linalg.eigvalsh(m.covs)) for m in
                                 with_scaled_covariances(fam_z, scale).models.values()))
        results["narrowing"]["curves"][str(scale)] = {
            "component_std_z": float(np.sqrt(smallest_var)),
            "composition_error": [composition_error(fam_x, s, next(keys), config.num_points)
                                  for s in config.sigmas]}
    return results


def make_figure(results: dict):
    plt = matplotlib_headless()
    fig, axes = plt.subplots(1, 5, figsize=(21, 3.9))
    floor = 1e-17  # exact zeros drawn at the floor of the log axis
    panels = [("feature-view conditional locality\n(pixel-space noise, z coordinates)",
               lambda r: max(r["feature_view"]["conditional_locality_violation"],
                             r["feature_view"]["pixel_locality_violation"])),
              ("pixel-space conditional locality (T7)",
               lambda r: r["pixel_space"]["conditional_locality_violation"]),
              ("annealed composition: relative score error\nfor J = {a, b, c} (T6)",
               lambda r: r["composition_error"])]
    for ax, (title, value) in zip(axes, panels):
        for name, tr in results["transforms"].items():
            sig = [r["sigma"] for r in tr["per_sigma"]]
            ax.loglog(sig, [max(value(r), floor) for r in tr["per_sigma"]], "o-", ms=3, label=name)
        ax.set_xlabel("sigma")
        ax.set_title(title, fontsize=9)
        ax.axhline(results["tolerance"], color="0.6", lw=0.8, ls=":")
    axes[0].set_ylabel("relative violation / error (max over points)")
    axes[0].legend(fontsize=7)
    ax = axes[4]
    narrowing = results["narrowing"]
    for scale, curve in narrowing["curves"].items():
        line, = ax.loglog(narrowing["sigmas"], [max(e, floor) for e in curve["composition_error"]], "o-",
                          ms=3, label=f"covariances x {scale} (std {curve['component_std_z']:.2g})")
        ax.axvline(curve["component_std_z"], color=line.get_color(), lw=0.8, ls=":")
    ax.set_xlabel("sigma")
    ax.set_title(f"{narrowing['transform']}: composition error as components\nnarrow "
                 "(dotted: component std)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[3]
    names = list(results["transforms"])
    pos = np.arange(len(names))
    for offset, kind, color in ((-0.2, "composition", "tab:red"), (0.2, "exact target score", "tab:blue")):
        ax.bar(pos + offset, [results["transforms"][n]["sampling"][kind]["cov_error"] for n in names],
               width=0.4, color=color, label=f"{kind}: covariance error")
        ax.plot(pos + offset, [results["transforms"][n]["sampling"][kind]["mean_error"] for n in names],
                "k^", ms=5, label="mean error" if kind == "composition" else None)
    ax.set_xticks(pos, names, rotation=30, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 6)  # room for the legend above the bars
    ax.set_title("Heun samples mapped to z: moment errors\nvs exact target moments", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle("CPC in features z = A x, diffusion in pixels x (T6/T7)", fontsize=11)
    fig.tight_layout()
    return fig


def add_arguments(parser) -> None:
    add_common_arguments(parser, NAME)
    d = Config()
    parser.add_argument("--shears", type=float, nargs="+", default=list(d.shears), help="shear strengths h")
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(d.sigmas), help="noise levels")
    parser.add_argument("--points", type=int, default=d.num_points, help="points per measure")
    parser.add_argument("--component-scales", type=float, nargs="+", default=list(d.component_scales),
                        help="covariance scale factors for the narrowing curves (default 1 0.1 0.01)")
    parser.add_argument("--num-samples", type=int, default=d.num_samples, help="Heun samples per transform")
    parser.add_argument("--num-steps", type=int, default=d.num_steps, help="Heun steps")


def run(args) -> int:
    config = Config(shears=tuple(args.shears), sigmas=tuple(args.sigmas), num_points=args.points,
                    component_scales=tuple(args.component_scales),
                    num_samples=args.num_samples, num_steps=args.num_steps)
    validate(config)
    results = run_experiment(config, args.seed)
    paths = write_outputs(args.out, NAME, config, args.seed, results, make_figure(results))
    for name, tr in results["transforms"].items():
        rows = tr["per_sigma"]
        print(f"{name:12s} feature-view cond. violation sigma {rows[0]['sigma']:g}: "
              f"{rows[0]['feature_view']['conditional_locality_violation']:.1e}, sigma {rows[-1]['sigma']:g}: "
              f"{rows[-1]['feature_view']['conditional_locality_violation']:.1e}; composition error "
              f"{min(r['composition_error'] for r in rows):.1e}..{max(r['composition_error'] for r in rows):.1e}; "
              f"sampled cov error {tr['sampling']['composition']['cov_error']:.3f} "
              f"(exact score {tr['sampling']['exact target score']['cov_error']:.3f})")
    for scale, curve in results["narrowing"]["curves"].items():
        print(f"{results['narrowing']['transform']}, covariances x {scale}: composition error per sigma "
              f"{['%.1e' % e for e in curve['composition_error']]}")
    print(f"wrote {paths['json']} and {paths['figure']}")
    return 0


register(Experiment(NAME, "T6/T7: CPC in features z = A x, orthogonal vs shear A", run, add_arguments))
