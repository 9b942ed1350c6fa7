"""Print the position-window tables of README.md from agreement/agreement.json.

    python results/clevr/machine/window/tables.py

One table per target network and r² kind: rows are the references (machines, then the other
networks and the clean image), columns the noise levels, entries the median over images.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    report = json.loads((HERE / "agreement" / "agreement.json").read_text())
    sigmas = [row["sigma"] for row in report["per_sigma"]]
    for key, title in (("r2_vs_mean_image", "about the mean image (image-specific part)"),
                       ("r2", "about each image's mean (Kamb & Ganguli's)")):
        for target in report["targets"]:
            run = report["runs"][target]
            print(f"\n{target} (step {run['checkpoint_step']}), median r² {title}, "
                  f"{report['per_sigma'][0][key][target][report['references'][0]]['n']} images\n")
            print("| reference | " + " | ".join(f"σ = {s:g}" for s in sigmas) + " |")
            print("|---|" + "---|" * len(sigmas))
            names = list(report["per_sigma"][0][key][target])
            for name in names:
                cells = [report["per_sigma"][i][key][target][name]["median"] for i in range(len(sigmas))]
                print(f"| {name} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
