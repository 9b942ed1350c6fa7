"""Exact-count accuracy of the 48 px detector per K, pooled over its two held-out sets.

HELDOUT48 (1,300 framed renders, seed 11, `eval-48px.json`) and the Kmax evaluation scenes of
`clevr validate --preset framed` (1,300 framed renders, seed 21, `eval-48px-seed21.json`; the
detector never trained or tuned on either). Prints a Markdown table with Wilson 95% intervals and
writes `pooled.json`. Usage: python results/detector/framed48/pooled.py
"""

import json
from pathlib import Path

from empirical.evaluation.kmax import wilson_interval

HERE = Path(__file__).parent
SETS = {"seed 11 (HELDOUT48)": HERE / "eval-48px.json", "seed 21 (Kmax scenes)": HERE / "eval-48px-seed21.json"}


def per_k(path: Path) -> dict[int, tuple[int, int]]:
    """{K: (correct, n)} of a `clevr detector eval` JSON at 48 px."""
    rows = json.loads(path.read_text())["per_resolution"]["48"]["per_k"]
    return {int(k): (round(v["exact_count_accuracy"] * v["n"]), v["n"]) for k, v in rows.items()}


def main() -> None:
    tables = {name: per_k(path) for name, path in SETS.items()}
    ks = sorted(set.intersection(*(set(t) for t in tables.values())))
    pooled = {k: tuple(map(sum, zip(*(t[k] for t in tables.values())))) for k in ks}
    print("| K | " + " | ".join(map(str, ks)) + " |")
    print("|---|" + "---|" * len(ks))
    for name, table in tables.items():
        print(f"| {name} | " + " | ".join(f"{table[k][0]}/{table[k][1]}" for k in ks) + " |")
    print("| pooled | " + " | ".join(f"**{pooled[k][0] / pooled[k][1]:.3f}**" for k in ks) + " |")
    print("| Wilson 95% | " + " | ".join("[{:.2f}, {:.2f}]".format(*wilson_interval(*pooled[k])) for k in ks) + " |")
    worst = min(ks, key=lambda k: pooled[k][0] / pooled[k][1])
    print(f"lowest pooled K = {worst}: {pooled[worst][0]}/{pooled[worst][1]}; "
          f"errors {sum(n - c for c, n in pooled.values())} of {sum(n for _, n in pooled.values())} scenes")
    record = {"sets": {name: str(path.name) for name, path in SETS.items()},
              "per_k": {k: {"correct": c, "n": n, "exact_count_accuracy": c / n,
                            "wilson95": wilson_interval(c, n)} for k, (c, n) in pooled.items()},
              "every_k_at_least_0.98": all(c / n >= 0.98 for c, n in pooled.values())}
    (HERE / "pooled.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
