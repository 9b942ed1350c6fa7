"""Print the Markdown tables of README.md for one evaluation folder: `python tables.py step3000`.

Reads `*/colour_kmax.json`, `*/locality/footprint_share.json` and `*/features/features.json` of
the runs in the folder (exp1-colour, exp3-colour, exp1-location where present)."""

import json
import sys
from pathlib import Path

RUNS = ("exp1-colour", "exp3-colour", "exp1-location")


def load(path):
    return json.loads(path.read_text()) if path.exists() else None


def kmax_table(folder):
    rows, notes = [], []
    for run in RUNS[:2]:
        d = load(folder / run / "colour_kmax.json")
        if d is None:
            continue
        counts = d["evaluation"]["counts"]
        ks = sorted(counts, key=int)
        fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
        rows.append(f"| {run} success | " + " | ".join(fmt(d["evaluation"]["per_k"][k]) for k in ks) + " |")
        rows.append(f"| {run} found / chance | " + " | ".join(
            "–" if counts[k].get("colour_found_chance") is None else
            f"{fmt(counts[k]['colour_found_rate'])} / {fmt(counts[k]['colour_found_chance'])}"
            for k in ks) + " |")
        rows.append(f"| {run} mean detections | " + " | ".join(fmt(counts[k]["mean_detections"]) for k in ks) + " |")
        e = d["evaluation"]
        notes.append(f"{run}: colour Kmax {d['kmax']} {e.get('kmax_bootstrap95')}, extras allowed "
                     f"{d['kmax_requested_found']} {e.get('kmax_requested_found_bootstrap95')} "
                     f"(checkpoint step {d.get('checkpoint_step')}).")
    head = "| K | " + " | ".join(ks) + " |\n|" + "---|" * (len(ks) + 1)
    return head + "\n" + "\n".join(rows) + "\n\n" + "\n".join(notes)


def footprint_table(folder):
    out = ["| model | σ = 0.1 inside / area | σ = 0.5 | σ = 2.0 | removals |", "|---|---|---|---|---|"]
    for run in RUNS:
        d = load(folder / run / "locality" / "footprint_share.json")
        if d is None:
            continue
        cells = [f"{s['inside']:.2f} ± {s['inside_sem']:.2f} / {s['area']:.2f}" for s in d["per_sigma"]]
        out.append(f"| {run} | " + " | ".join(cells) + f" | {d['per_sigma'][0]['removals']} |")
    return "\n".join(out)


def feature_tables(folder):
    spaces = ("pixel", "mid", "dec")
    a = ["| model | " + " | ".join(f"{s} \\|cos\\| | {s} centred" for s in spaces) + " | common share (pixel / mid / dec, σ = 0.5) |",
         "|---|" + "---|" * (2 * len(spaces) + 1)]
    b = ["| model | " + " | ".join(f"{s} σ = 0.1 / 0.5 / 2.0" if s == "pixel" else s for s in spaces) + " |",
         "|---|" + "---|" * len(spaces)]
    for run in RUNS:
        d = load(folder / run / "features" / "features.json")
        if d is None:
            continue
        ms, ro = d["mean_shift"]["per_sigma"], d["removal_overlap"]["per_sigma"]
        j = lambda vals: " / ".join(f"{v:.2f}" for v in vals)  # noqa: E731
        mid = next(i for i, r in enumerate(ms) if r["sigma"] == 0.5)
        a.append(f"| {run} | " + " | ".join(f"{j(r[s]['mean_offdiag'] for r in ms)} | {j(r[s]['centred_mean_offdiag'] for r in ms)}"
                                             for s in spaces)
                 + " | " + j(ms[mid][s]["common_share"] for s in spaces) + " |")
        b.append(f"| {run} | " + " | ".join(" / ".join(f"{r[s]['ratio']:.1f}" for r in ro) for s in spaces) + " |")
    return "\n".join(a) + "\n\n" + "\n".join(b)


if __name__ == "__main__":
    folder = Path(__file__).parent / sys.argv[1]
    print(kmax_table(folder), "\n")
    print(footprint_table(folder), "\n")
    print(feature_tables(folder))
