"""Every refusal of ``numerics.spec`` names the field and the problem, whole (the guide: a bad
spec names the field and the problem). One valid spec, broken one field at a time; also the
mutation killers of the numerics-spec stage (``results/mutation/``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from localcomp.errors import UserError
from numerics.spec import load_spec, parse_spec


def valid_spec() -> dict:
    """2 pixels, 1 channel, mask a = {0}: null model and {a}, one component each."""
    component = {"weight": 1.0, "mean": [0.0, 0.0], "var": 0.5}
    return {"pixels": 2, "channels": 1, "masks": {"a": [0]},
            "models": [{"conditioners": [], "components": [component]},
                       {"conditioners": ["a"], "components": [copy.deepcopy(component)]}]}


def broken(edit) -> dict:
    spec = valid_spec()
    edit(spec)
    return spec


CASES = [
    (lambda s: s["models"][0]["components"][0].__setitem__("mean", [0.0, float("inf")]),
     "spec field models[0].components[0].mean: must be finite"),
    (lambda s: s["models"][0]["components"][0].__setitem__("cov", [[1.0, 0.0], [0.0, 1.0]]),
     "spec field models[0].components[0]: needs exactly one of 'cov' (d x d list) or 'var' (list of d or scalar)"),
    (lambda s: s["models"][0]["components"][0].pop("var"),
     "spec field models[0].components[0]: needs exactly one of 'cov' (d x d list) or 'var' (list of d or scalar)"),
    (lambda s: s["models"][0]["components"][0].update({"var": None, "cov": [[1.0, 0.2], [0.0, 1.0]]})
     or s["models"][0]["components"][0].pop("var"),
     "spec field models[0].components[0].cov: must be symmetric"),
    (lambda s: s["models"][1].__setitem__("components", [3]),
     "spec field models[1].components[0]: must be an object"),
    (lambda s: s.__setitem__("masks", [0]),
     "spec field masks: must be an object mapping conditioner ids to pixel lists"),
    (lambda s: s["masks"].__setitem__("a", [2]),
     "spec field masks.a: must be a non-empty list of pixel indices in [0, 2)"),
    (lambda s: s.__setitem__("models", []), "spec field models: must be a non-empty list"),
    (lambda s: s["models"][0]["components"][0].__setitem__("var", -1.0),
     "spec field models[0].components[0].var: must be positive definite"),
    (lambda s: s["models"][1].__setitem__("conditioners", "a"),
     "spec field models[1].conditioners: must be a list of conditioner ids"),
    (lambda s: s["models"][1].__setitem__("conditioners", ["b"]),
     "spec field models[1].conditioners: ids ['b'] have no entry in masks"),
    (lambda s: s["models"][1].__setitem__("conditioners", []),
     "spec field models[1].conditioners: set [] appears twice"),
]


@pytest.mark.parametrize("edit, message", CASES)
def test_a_broken_field_is_refused_with_its_name_and_problem(edit, message):
    with pytest.raises(UserError) as error:
        parse_spec(broken(edit))
    assert str(error.value) == message


def test_the_valid_spec_parses_and_var_gives_an_isotropic_covariance():
    family = parse_spec(valid_spec())
    np.testing.assert_array_equal(family.models[frozenset()].covs[0], 0.5 * np.eye(2))


def test_an_unreadable_spec_file_is_named_with_the_reason(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(UserError) as error:
        load_spec(missing)
    assert str(error.value) == f"spec file {missing}: cannot read (No such file or directory)"
