"""Toy experiments on tiny settings: outputs exist with the expected fields, robust outcomes hold."""

import json

import pytest

from localcomp.errors import UserError
from numerics.experiments import EXPERIMENTS
from numerics.experiments import appendix_g


def test_appendix_g_registered():
    assert "appendix_g" in EXPERIMENTS


def test_appendix_g_eq17_empty_succeeds_bayes_fails(tmp_path):
    import argparse

    args = argparse.Namespace(seed=1, out=tmp_path, dim=8, component_std=0.1, num_samples=64,
                              num_steps=24, with_eq18=False)
    assert appendix_g.run(args) == 0
    for name in ("run.json", "appendix_g.json", "appendix_g.png"):
        assert (tmp_path / name).exists()
    result = json.loads((tmp_path / "appendix_g.json").read_text())
    rates = result["main_set_success"]["eq17"]
    # measured rates, with a margin: the exact empty-background composition is N(1_S, s^2 I)
    assert rates["empty"] > 0.9
    assert rates["bayes"] < 0.5
    rows = result["equations"]["eq17"]["empty"]
    assert {"k", "set", "success_rate", "success_stderr", "off_set_on_rate"} <= set(rows[0])


def test_appendix_g_bad_config_names_field():
    with pytest.raises(UserError, match="--dim"):
        appendix_g.validate(appendix_g.Config(dim=2))
