"""The JSON spec of a user's own conditional Gaussian-mixture family.

::

    {"pixels": n, "channels": C,
     "masks": {"<conditioner id>": [pixel indices]},
     "models": [{"conditioners": ["<id>", ...],
                 "components": [{"weight": w, "mean": [n*C numbers, pixel-major],
                                 "cov": [[...]] | "var": [n*C numbers] | "var": scalar}]}]}

One model per admissible conditioner set, the empty set (``"conditioners": []``) included,
and every singleton of a conditioner that appears. Weights are normalized per model (they
must be positive; scaling a model's weights changes nothing). Masks may overlap, but a model's
conditioners must have pairwise disjoint masks (an admissible set). ``load_spec`` raises ``UserError`` naming the offending field.
"""

from __future__ import annotations

import itertools
import json
import numbers
from pathlib import Path

import numpy as np

from localcomp.errors import UserError
from numerics.families import ConditionalFamily
from numerics.gmm import GaussianMixture


def _fail(field: str, problem: str):
    raise UserError(f"spec field {field}: {problem}")


def _positive_int(value, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        _fail(field, f"must be a positive integer, got {value!r}")
    return value


def _number_list(value, length: int, field: str) -> np.ndarray:
    if not isinstance(value, list) or len(value) != length or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        _fail(field, f"must be a list of {length} numbers")
    array = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(array)):
        _fail(field, "must be finite")
    return array


def _covariance(component: dict, d: int, field: str) -> np.ndarray:
    present = [k for k in ("cov", "var") if k in component]
    if len(present) != 1:
        _fail(field, "needs exactly one of 'cov' (d x d list) or 'var' (list of d or scalar)")
    if "cov" in component:
        rows = component["cov"]
        if not isinstance(rows, list) or len(rows) != d:
            _fail(f"{field}.cov", f"must be a {d} x {d} list of lists")
        cov = np.stack([_number_list(r, d, f"{field}.cov[{i}]") for i, r in enumerate(rows)])
        if not np.allclose(cov, cov.T, rtol=1e-12, atol=1e-12):
            _fail(f"{field}.cov", "must be symmetric")
    else:
        var = component["var"]
        if isinstance(var, numbers.Real) and not isinstance(var, bool):
            cov = float(var) * np.eye(d)
        else:
            cov = np.diag(_number_list(var, d, f"{field}.var"))
    if np.linalg.eigvalsh(cov).min() <= 0:
        _fail(f"{field}.{present[0]}", "must be positive definite")
    return cov


def _mixture(model: dict, d: int, field: str) -> GaussianMixture:
    components = model.get("components")
    if not isinstance(components, list) or not components:
        _fail(f"{field}.components", "must be a non-empty list")
    weights, means, covs = [], [], []
    for k, comp in enumerate(components):
        cf = f"{field}.components[{k}]"
        if not isinstance(comp, dict):
            _fail(cf, "must be an object")
        w = comp.get("weight")
        if not isinstance(w, numbers.Real) or isinstance(w, bool) or not w > 0:
            _fail(f"{cf}.weight", f"must be a positive number, got {w!r}")
        weights.append(float(w))
        means.append(_number_list(comp.get("mean"), d, f"{cf}.mean"))
        covs.append(_covariance(comp, d, cf))
    w = np.asarray(weights)
    return GaussianMixture(w / w.sum(), np.stack(means), np.stack(covs))


def parse_spec(spec) -> ConditionalFamily:
    """Validate a decoded JSON spec and build the ``ConditionalFamily``."""
    if not isinstance(spec, dict):
        _fail("(top level)", "must be a JSON object")
    for key in ("pixels", "masks", "models"):
        if key not in spec:
            _fail(key, "is missing")
    n = _positive_int(spec["pixels"], "pixels")
    C = _positive_int(spec.get("channels", 1), "channels")
    masks = spec["masks"]
    if not isinstance(masks, dict):
        _fail("masks", "must be an object mapping conditioner ids to pixel lists")
    parsed_masks = {}
    for c, pixels in masks.items():
        if not isinstance(pixels, list) or not pixels or not all(
                isinstance(p, int) and not isinstance(p, bool) and 0 <= p < n for p in pixels):
            _fail(f"masks.{c}", f"must be a non-empty list of pixel indices in [0, {n})")
        if len(set(pixels)) != len(pixels):
            _fail(f"masks.{c}", "has repeated pixels")
        parsed_masks[str(c)] = tuple(sorted(pixels))
    if not isinstance(spec["models"], list) or not spec["models"]:
        _fail("models", "must be a non-empty list")
    models = {}
    for m, model in enumerate(spec["models"]):
        field = f"models[{m}]"
        if not isinstance(model, dict):
            _fail(field, "must be an object")
        conds = model.get("conditioners")
        if not isinstance(conds, list) or not all(isinstance(c, str) for c in conds):
            _fail(f"{field}.conditioners", "must be a list of conditioner ids")
        unknown = [c for c in conds if c not in parsed_masks]
        if unknown:
            _fail(f"{field}.conditioners", f"ids {unknown} have no entry in masks")
        J = frozenset(conds)
        if len(J) != len(conds):
            _fail(f"{field}.conditioners", "has repeated ids")
        if J in models:
            _fail(f"{field}.conditioners", f"set {sorted(J)} appears twice")
        for c1, c2 in itertools.combinations(sorted(J), 2):
            shared = sorted(set(parsed_masks[c1]) & set(parsed_masks[c2]))
            if shared:
                _fail(f"{field}.conditioners", f"set {sorted(J)} is not admissible: masks of "
                                               f"{c1!r} and {c2!r} overlap (pixels {shared})")
        models[J] = _mixture(model, n * C, field)
    needed = [frozenset()] + [frozenset([c]) for J in models for c in sorted(J)]
    for J in needed:
        if J not in models:
            _fail("models", f"needs a model for conditioner set {sorted(J)} "
                            "(the empty set and every singleton used)")
    return ConditionalFamily(n, C, parsed_masks, models, name="spec")


def load_spec(path) -> ConditionalFamily:
    """Read and validate a spec file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise UserError(f"spec file {path}: cannot read ({error.strerror})") from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"spec file {path}: not valid JSON ({error})") from None
    return parse_spec(spec)


def family_to_spec(family: ConditionalFamily) -> dict:
    """The JSON spec of a family (products are expanded into flat mixtures)."""
    from numerics import blocks

    models = []
    for J in family.sets():
        flat = blocks.expand(family.models[J])
        models.append({"conditioners": sorted(J), "components": [
            {"weight": float(w), "mean": np.asarray(mu).tolist(), "cov": np.asarray(S).tolist()}
            for w, mu, S in zip(flat.weights, flat.means, flat.covs)]})
    return {"pixels": family.pixels, "channels": family.channels,
            "masks": {c: list(p) for c, p in family.masks.items()}, "models": models}
