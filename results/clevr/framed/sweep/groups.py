"""Spearman between conditional leakage and the found share at K = 6, 8 within groups of the
correlation's models (the table in README.md), from ``correlation/correlation.json`` that
``figures.sh`` writes: ``clevr correlate``'s own computation (``empirical.evaluation.correlation.correlate``)
over a subset of its entries, chosen by label.

    python results/clevr/framed/sweep/groups.py    # writes correlation/groups.json
"""

import json
from pathlib import Path

from empirical.evaluation.correlation import correlate, y_quantity
from localcomp.provenance import write_json_atomic

HERE = Path(__file__).parent
METRIC = "conditional_leakage"


def _framed_exp3_before_positions(label: str) -> bool:
    """The framed Exp.3 models at 750, 1,500 and 3,000 steps, which had not learned positions."""
    return label.startswith("48 exp3-s0") and "-x2" not in label


GROUPS = {
    "all": lambda label: True,
    "all but the framed Exp.3 models before they learned positions (750, 1,500, 3,000 steps)":
        lambda label: not _framed_exp3_before_positions(label),
    "all but Exp.1 (every location listed; framed and 32 px)": lambda label: "exp1" not in label,
    "framed 48 px only": lambda label: label.startswith("48 "),
    "32 px mini only": lambda label: label.startswith("32 "),
}


def main() -> None:
    entries = json.loads((HERE / "correlation" / "correlation.json").read_text())["entries"]
    out = {"metric": METRIC, "y": y_quantity(entries), "source": "correlation/correlation.json", "groups": {}}
    for name, keep in GROUPS.items():
        chosen = [e for e in entries if keep(e["label"])]
        result = correlate(chosen, [METRIC])[METRIC]
        result["labels"] = [e["label"] for e in chosen]
        out["groups"][name] = result
        low, high = result["bootstrap95"]["interval"]
        print(f"{name}: n = {result['n']}, rho = {result['rho']:.2f} [{low:.2f}, {high:.2f}], p = {result['p_value']:.1g}")
    write_json_atomic(HERE / "correlation" / "groups.json", out)


if __name__ == "__main__":
    main()
