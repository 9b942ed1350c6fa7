"""Is Kmax set by per-object reliability? If each of the K requested objects is found
independently with probability p_K (the measured share found at K, `location_found_rate`), every
one of them is found with probability p_K ** K, and Kmax with extras allowed is predicted by the
same rule as the measured one (`empirical.evaluation.kmax.kmax`, threshold 0.5) applied to
p_K ** K. A model whose share is flat at p reaches Kmax ~ ln 0.5 / ln p, so a Kmax of 9 (the
paper's for Exp.2L / Exp.3L on the 1-3 row) needs p >= 0.5 ** (1 / 9) = 0.926, and 5 needs 0.871.
Reads only the `kmax.json` of each run folder (no sampling, no detector).

    python results/clevr/framed/reliability.py RUN_FOLDER ... --out results/clevr/framed/reliability
"""

import argparse
import json
import math
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from empirical.evaluation.kmax import DEFAULT_THRESHOLD, kmax  # noqa: E402
from localcomp.provenance import write_json_atomic  # noqa: E402

MAX_K_OF_THE_MEAN = 8   # p of a run: mean share over its tested K = 1..8 (every framed run has them)


def kmax_is_determined(kmax_value: int, tested: list[int]) -> bool:
    """Whether a Kmax read off the tested K alone is the Kmax every K would give: every K from 1 to
    Kmax + 1 was tested (or to the largest tested K). A run tested at K = 1, 6, 8 that passes K = 1
    and fails K = 6 has Kmax 1 by the rule, but any of 1..5 with K = 2..5 tested."""
    return set(range(1, min(kmax_value + 1, max(tested)) + 1)) <= set(tested)


def reliability(kmax_json: dict) -> dict:
    """Per tested K >= 1: share found p_K, every requested object found (measured and p_K ** K),
    exactly K at the K places (strict); Kmax with extras measured and predicted, strict Kmax,
    the mean p over K = 1..8 and the Kmax a flat p predicts (ln 0.5 / ln p)."""
    counts = {int(k): c for k, c in kmax_json["evaluation"]["counts"].items() if int(k) >= 1}
    per_k = {}
    for k in sorted(counts):
        p = counts[k].get("location_found_rate")
        if p is None:
            continue
        per_k[k] = {"share_found": p, "all_found": counts[k]["requested_found"],
                    "all_found_if_independent": p ** k,
                    "strict": kmax_json["evaluation"]["per_k"][str(k)], "n": counts[k]["n"]}
    low = [v["share_found"] for k, v in per_k.items() if k <= MAX_K_OF_THE_MEAN]
    p_mean = sum(low) / len(low)
    flat = math.inf if p_mean >= 1 else (0.0 if p_mean <= 0 else math.log(DEFAULT_THRESHOLD) / math.log(p_mean))
    # K = 1 is left out of the errors: there p_K ** K is the measured rate by construction
    errors = [abs(v["all_found"] - v["all_found_if_independent"]) for k, v in per_k.items() if k >= 2]
    tested = sorted(per_k)
    return {"experiment": kmax_json["experiment"], "training_objects": kmax_json["training_objects"],
            "tested_k": tested, "per_k": per_k,
            "kmax_strict": kmax_json["kmax"], "kmax_extras_allowed": kmax_json["kmax_requested_found"],
            "kmax_strict_determined": kmax_is_determined(kmax_json["kmax"], tested),
            "kmax_extras_allowed_determined": kmax_is_determined(kmax_json["kmax_requested_found"], tested),
            "kmax_extras_allowed_predicted": kmax({k: v["all_found_if_independent"] for k, v in per_k.items()}),
            "share_found_mean_k1_to_8": p_mean, "kmax_of_a_flat_share": flat,
            "all_found_mean_abs_error": sum(errors) / len(errors)}


def label_clusters(results: dict, width: float = 0.03) -> list[tuple[float, int, list[str]]]:
    """Runs numbered 1.. in order, grouped by Kmax with extras allowed and p within ``width`` of the
    group's first: ``(mean p, Kmax, [numbers])`` per group, for one label each in the figure."""
    points = sorted((r["kmax_extras_allowed"], r["share_found_mean_k1_to_8"], str(i))
                    for i, r in enumerate(results.values(), start=1))
    groups: list[list[tuple[int, float, str]]] = []
    for point in points:
        if groups and groups[-1][0][0] == point[0] and point[1] - groups[-1][0][1] <= width:
            groups[-1].append(point)
        else:
            groups.append([point])
    return [(sum(p for _, p, _ in g) / len(g), g[0][0], sorted((n for _, _, n in g), key=int)) for g in groups]


def figure(results: dict, path: Path) -> None:
    # the key under the panels: its height grows with the number of runs, so the figure grows with
    # it (a fixed bottom margin let the key run over the x labels once there were ~40 runs)
    key = textwrap.wrap("  ".join(f"{i}\u00a0{n}" for i, n in enumerate(results, start=1)), width=230)
    key_height = len(key) * 6 * 1.3 / 72 + 0.1  # inches: lines of 6 pt type, and a margin
    fig_height = 4.6 + key_height
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, fig_height))
    for name, r in results.items():
        ks = r["tested_k"]
        left.scatter([r["per_k"][k]["all_found_if_independent"] for k in ks],
                     [r["per_k"][k]["all_found"] for k in ks], s=12, alpha=0.6)
    left.plot([0, 1], [0, 1], color="grey", lw=1)
    left.set(xlabel="share found at K, to the power K", ylabel="every requested object found (measured)",
             title="independent objects? (one point per run and K)", xlim=(0, 1), ylim=(0, 1))
    grid = [i / 200 for i in range(1, 199)]
    right.plot(grid, [math.log(0.5) / math.log(p) for p in grid], color="grey", lw=1,
               label="ln 0.5 / ln p (a flat share p)")
    for i, (name, r) in enumerate(results.items(), start=1):
        p = r["share_found_mean_k1_to_8"]
        # hollow: a Kmax that untested K leave open (kmax_is_determined)
        right.scatter([p], [r["kmax_extras_allowed"]], marker="o", s=22, edgecolors="C0",
                      color="C0" if r["kmax_extras_allowed_determined"] else "none")
        right.scatter([p], [r["kmax_strict"]], marker="x", s=22,
                      color="C3" if r["kmax_strict_determined"] else "salmon")
    # one label per cluster of runs at the same Kmax and nearly the same p; a label that would run
    # into the one before it on its row goes one level up or down (6 pt digits are ~0.007 of the axis)
    level_offsets, level_ends = (2, 9, -9, 16), {}
    for p, kmax_value, numbers in label_clusters(results):
        text = ",".join(numbers)
        ends = level_ends.setdefault(kmax_value, [-1.0] * len(level_offsets))
        level = next((i for i, end in enumerate(ends) if p > end), len(level_offsets) - 1)
        ends[level] = p + 0.0075 * (len(text) + 1)
        right.annotate(text, (p, kmax_value), fontsize=6, xytext=(2, level_offsets[level]),
                       textcoords="offset points")
    right.scatter([], [], marker="o", color="C0", label="Kmax, extras allowed")
    right.scatter([], [], marker="x", color="C3", label="strict Kmax")
    right.scatter([], [], marker="o", color="none", edgecolors="C0", label="hollow / pale: untested K leave it open")
    for k, style in ((9, ":"), (5, "--")):
        right.axvline(0.5 ** (1 / k), color="k", lw=0.8, ls=style)
        right.text(0.5 ** (1 / k), 11.5, f" p for Kmax {k}", fontsize=7, rotation=90, va="top")
    right.set(xlabel="share of requested objects found, mean over K = 1..8", ylabel="Kmax",
              title="Kmax against per-object reliability", xlim=(0, 1), ylim=(0, 12))
    right.legend(fontsize=7, loc="upper left")
    fig.text(0.5, 0.005, "\n".join(key), ha="center", va="bottom", fontsize=6)
    fig.tight_layout(rect=(0, key_height / fig_height, 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)


def agreement(results: dict) -> dict:
    """How often the independence prediction of Kmax (extras allowed) is right, and how far the
    predicted "every requested object found" rates are from the measured ones over all (run, K)."""
    gaps = [abs(r["kmax_extras_allowed"] - r["kmax_extras_allowed_predicted"]) for r in results.values()]
    errors = [abs(v["all_found"] - v["all_found_if_independent"]) for r in results.values()
              for k, v in r["per_k"].items() if k >= 2]
    return {"runs": len(gaps), "kmax_exact": sum(g == 0 for g in gaps), "kmax_off_by_1": sum(g == 1 for g in gaps),
            "kmax_off_by_2_or_more": sum(g >= 2 for g in gaps), "all_found_points": len(errors),
            "all_found_mean_abs_error": sum(errors) / len(errors), "all_found_max_abs_error": max(errors)}


def open_mark(r: dict, field: str) -> str:
    return "" if r[f"{field}_determined"] else "\\*"


def markdown(results: dict) -> str:
    lines = ["| run | tested K | p (K = 1..8) | Kmax a flat p predicts | Kmax extras (predicted from p_K^K) "
             "| strict Kmax | mean abs. error of p_K^K (K >= 2) |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {','.join(map(str, r['tested_k']))} | {r['share_found_mean_k1_to_8']:.2f} | "
                     f"{r['kmax_of_a_flat_share']:.1f} | {r['kmax_extras_allowed']}{open_mark(r, 'kmax_extras_allowed')} "
                     f"({r['kmax_extras_allowed_predicted']}) | {r['kmax_strict']}{open_mark(r, 'kmax_strict')} | "
                     f"{r['all_found_mean_abs_error']:.2f} |")
    a = agreement(results)
    lines += ["", "\\* a Kmax that untested K leave open (not every K from 1 to Kmax + 1 tested); the prediction "
              "in brackets is read off the same tested K.",
              "", f"Kmax with extras allowed, predicted from p_K ** K against measured: equal in {a['kmax_exact']} "
              f"of {a['runs']} runs, 1 apart in {a['kmax_off_by_1']}, 2 or more in {a['kmax_off_by_2_or_more']}; "
              f"every requested object found, p_K ** K against measured over {a['all_found_points']} (run, K >= 2): "
              f"mean absolute error {a['all_found_mean_abs_error']:.3f}, largest {a['all_found_max_abs_error']:.2f}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="folders with kmax.json")
    parser.add_argument("--out", required=True, help="folder for reliability.json, .md and .png")
    args = parser.parse_args()
    results = {}
    for folder in args.runs:
        path = Path(folder) / "kmax.json"
        if not path.exists():
            parser.error(f"{path} does not exist")
        name = str(Path(folder)).removeprefix("results/clevr/")
        results[name] = reliability(json.loads(path.read_text()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "reliability.json", {"runs": results, "agreement": agreement(results),
                                                 "threshold": DEFAULT_THRESHOLD,
                                                 "command": ["python", *sys.argv]})
    (out / "reliability.md").write_text(markdown(results))
    figure(results, out / "reliability.png")
    print(markdown(results))


if __name__ == "__main__":
    main()
