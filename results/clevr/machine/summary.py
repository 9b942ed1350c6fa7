"""Print table rows (README.md) from run folders' kmax.json and locality.json: machines, and any
other run with a kmax.json (the framed Table 1 runs: results/clevr/framed/README.md).

    python results/clevr/machine/summary.py [FOLDER ...]     # default: every folder here with a kmax.json

A row is labelled by the experiment and, for a trained network, its checkpoint step.
"""

import json
import sys
from pathlib import Path

from empirical.evaluation.dose_response import load_point

HERE = Path(__file__).resolve().parent


def row(folder: Path) -> str:
    point = load_point(f"s:1:{folder}", found_ks=(4, 6, 8, 10))
    counts = json.loads((folder / "kmax.json").read_text())["evaluation"]["counts"]
    locality = folder / "locality" / "locality.json"
    radius = json.loads(locality.read_text())["summary"]["pixel_effective_radius"] if locality.exists() else None
    found = " / ".join("-" if point["found_share"][k] is None else f"{point['found_share'][k]['found']:.2f}"
                       for k in ("4", "6", "8", "10"))
    detections = counts.get("8", {}).get("mean_detections")
    step = json.loads((folder / "kmax.json").read_text()).get("checkpoint_step")
    label = point["experiment"] + (f" @ {step}" if step else "")
    leak = point["conditional_leakage"]
    return (f"| {label} | {point['kmax']} {point['kmax_bootstrap95']} | {point['kmax_requested_found']} "
            f"{point['kmax_requested_found_bootstrap95']} | {found} | "
            f"{'-' if detections is None else f'{detections:.1f}'} | {'-' if leak is None else f'{leak:.2f}'} | "
            f"{'-' if radius is None else f'{radius:.1f} px'} | {point['num_sets']} × {point['samples_per_set']} |")


def main() -> None:
    folders = [Path(a) for a in sys.argv[1:]] or sorted(p.parent for p in HERE.glob("*/kmax.json"))
    print("| run | strict Kmax [bootstrap 95%] | Kmax, extras allowed | share found at K = 4 / 6 / 8 / 10 "
          "| mean detections at K = 8 | conditional leakage | pixel effective radius | sets × samples |")
    print("|---|---|---|---|---|---|---|---|")
    for folder in folders:
        print(row(folder))


if __name__ == "__main__":
    main()
