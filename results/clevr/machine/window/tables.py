"""Print the position-window tables of README.md from agreement/agreement.json.

    python results/clevr/machine/window/tables.py
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    report = json.loads((HERE / "agreement" / "agreement.json").read_text())
    refs = [r for r in report["references"]]
    for key, title in (("r2", "about each image's mean"), ("r2_vs_mean_image", "about the mean image")):
        for target in report["targets"]:
            print(f"\n{target} ({report['runs'][target]['experiment']}, step "
                  f"{report['runs'][target]['checkpoint_step']}), median r² {title}\n")
            print("| σ | " + " | ".join(refs) + " |")
            print("|---|" + "---|" * len(refs))
            for row in report["per_sigma"]:
                values = row[key][target]
                print(f"| {row['sigma']:g} | " + " | ".join(f"{values[r]['median']:.2f}" for r in refs) + " |")


if __name__ == "__main__":
    main()
