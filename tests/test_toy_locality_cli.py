"""``localcomp toy locality``: classification of CPC / pixel-non-local / conditionally-non-local
spec files, and a malformed spec (error names the field, exit 2, nothing written)."""

import json

import numpy as np
import pytest

from localcomp.cli import main
from numerics import families as F
from numerics.gmm import isotropic_mixture
from numerics.spec import family_to_spec


@pytest.fixture(scope="module")
def cpc():
    rng = np.random.default_rng(0)
    masks = {"a": [0, 1], "b": [2, 3]}

    def mix(d):
        return isotropic_mixture(np.array([0.4, 0.6]), rng.normal(size=(2, d)), 0.1)

    return F.cpc_family(6, 1, masks, {c: mix(2) for c in masks}, {c: mix(2) for c in masks}, mix(2))


def _run(tmp_path, family, name):
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps(family_to_spec(family)))
    out = tmp_path / f"{name}.out.json"
    assert main(["toy", "locality", str(spec), "--sigmas", "0.05", "0.5", "2", "--json", str(out),
                 "--points", "16"]) == 0
    result = json.loads(out.read_text())
    assert [r["sigma"] for r in result["per_sigma"]] == [0.05, 0.5, 2.0]
    for row in result["per_sigma"]:
        assert {"pixel_locality_violation", "conditional_locality_violation", "cpc_gap"} <= set(row)
    return result


def test_cpc_spec(tmp_path, cpc):
    r = _run(tmp_path, cpc, "cpc")
    assert (r["pixel_local"], r["conditionally_local"], r["cpc"]) == (True, True, True)


def test_pixel_non_local_spec(tmp_path, cpc):
    r = _run(tmp_path, F.with_correlated_weights(cpc, frozenset("ab"), 0.5), "pix")
    assert (r["pixel_local"], r["cpc"]) == (False, False)


def test_conditionally_non_local_spec(tmp_path, cpc):
    r = _run(tmp_path, F.with_conditioner_shift(cpc, frozenset("ab"), "b", 0.5), "cond")
    assert (r["pixel_local"], r["conditionally_local"], r["cpc"]) == (True, False, False)


def test_malformed_spec(tmp_path, capsys, cpc):
    spec = family_to_spec(cpc)
    spec["models"][1]["components"][0]["weight"] = -1.0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    out = tmp_path / "bad.out.json"
    assert main(["toy", "locality", str(path), "--json", str(out)]) == 2
    assert "models[1].components[0].weight" in capsys.readouterr().err
    assert not out.exists()


def test_missing_null_model(tmp_path, capsys, cpc):
    spec = family_to_spec(cpc)
    spec["models"] = [m for m in spec["models"] if m["conditioners"]]
    path = tmp_path / "nonull.json"
    path.write_text(json.dumps(spec))
    assert main(["toy", "locality", str(path)]) == 2
    assert "models" in capsys.readouterr().err


def test_unwritable_json_is_refused_before_the_computation(tmp_path, capsys, cpc, monkeypatch):
    import numerics.locality
    spec = tmp_path / "cpc.json"
    spec.write_text(json.dumps(family_to_spec(cpc)))
    monkeypatch.setattr(numerics.locality, "classify",
                        lambda *a, **k: pytest.fail("computed before checking --json"))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for bad in (blocker / "out.json", tmp_path):  # under a file; a directory
        assert main(["toy", "locality", str(spec), "--json", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "--json" in err and len(err.strip().splitlines()) == 1


def test_existing_json_needs_force(tmp_path, capsys, cpc):
    spec = tmp_path / "cpc.json"
    spec.write_text(json.dumps(family_to_spec(cpc)))
    out = tmp_path / "old.json"
    out.write_text("{}")
    assert main(["toy", "locality", str(spec), "--json", str(out), "--points", "4", "--sigmas", "1"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err and out.read_text() == "{}"
    assert main(["toy", "locality", str(spec), "--json", str(out), "--points", "4", "--sigmas", "1",
                 "--force"]) == 0
    assert "per_sigma" in json.loads(out.read_text())
