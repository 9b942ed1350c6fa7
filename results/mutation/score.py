"""Score of a sampled mutmut run (numerics stage): per module and overall, with 95% Wilson
intervals, from the run's ``results.txt`` (``mutmut results --all true``), its ``sample-*.txt``
name lists (``sample.py``) and the hand classification of the survivors.

    python score.py WORK_DIR survivors-numerics.md score-numerics.json

The classification file holds one line per sampled survivor: ``- `NAME` — equivalent: why``
(or ``fixture-equivalent: why``, ``killed-later: by which test``, or ``left: why``). A survivor
without a line counts as not equivalent. ``score_at_revision`` = killed / (checked − equivalent −
fixture-equivalent), mutmut's verdicts at the run's revision; ``score`` also counts the
``killed-later`` survivors (a killer test added after the run, verified against the mutant with
``verify_killers.sh``). "timeout" counts as killed (the mutant hung the checks, which noticed),
"no tests" as not killed; "not checked" (a sampled mutant the run did not reach) is reported and
left out of the score.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path


def wilson(k: int, n: int, z: float = 1.959964) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def main(work: Path, classification: Path, out: Path) -> dict:
    status = dict(line.strip().split(": ", 1) for line in (work / "results.txt").read_text().splitlines()
                  if ": " in line)
    sampled = [n for f in sorted(work.glob("sample-*.txt")) for n in f.read_text().split()]
    kinds = {m.group(1): m.group(2) for m in re.finditer(
        r"^- `([^`]+)` — (equivalent|fixture-equivalent|killed-later|left)", classification.read_text(), re.M)}
    rows = defaultdict(Counter)
    for name in sampled:
        module = name.split(".x_")[0]
        s = status.get(name, "not checked")
        kind = "killed" if s in ("killed", "timeout") else ("not checked" if s == "not checked" else
                                                            kinds.get(name, "left"))
        rows[module][kind] += 1
        rows["all"][kind] += 1
    report = {}
    for module, c in sorted(rows.items()):
        checked = sum(c.values()) - c["not checked"]
        scored = checked - c["equivalent"] - c["fixture-equivalent"]
        report[module] = {"sampled": sum(c.values()), "checked": checked, "killed": c["killed"],
                          "equivalent": c["equivalent"], "fixture_equivalent": c["fixture-equivalent"],
                          "killed_later": c["killed-later"], "not_equivalent_survivors": c["left"],
                          "not_checked": c["not checked"],
                          "score_at_revision": c["killed"] / scored if scored else None,
                          "score": (c["killed"] + c["killed-later"]) / scored if scored else None,
                          "score_wilson95": wilson(c["killed"] + c["killed-later"], scored),
                          "raw_score": c["killed"] / checked if checked else None}
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    result = main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
    for module, r in result.items():
        print(f"{module:24s} {r['killed'] + r['killed_later']:4d}/{r['checked'] - r['equivalent'] - r['fixture_equivalent']:4d} "
              f"score {r['score'] if r['score'] is None else round(r['score'], 3)} "
              f"95% {[round(x, 3) for x in r['score_wilson95']]} (sampled {r['sampled']})")
