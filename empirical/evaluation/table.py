"""Table 1 of arXiv 2509.16447 (v3): Kmax per training set and experiment, ours next to the paper's.

Input: ``kmax.json`` files written by ``localcomp clevr kmax`` (fields ``experiment``,
``training_objects`` such as ``"1-3"``, ``kmax``). Output: a JSON table and a Markdown rendering
where each cell reads ``ours (paper)``; ``–`` where the paper reports nothing, ``·`` where we have no run.

Seeds (issue 11 item 4): a cell may hold one run per training seed (the seed is read from the
``run.json`` beside ``kmax.json``, else ``kmax.run.json``). The cell's own fields are the lowest
seed's, ``seeds`` maps every seed to its values, and the Markdown cell lists them in seed order,
``0 [5] / 1 [6] (9)``. The share of requested objects found beyond the training maximum carries a
bootstrap interval over location sets where the ``kmax.json`` has per-sample shares
(``empirical.evaluation.kmax.found_share_beyond``). Each cell records its training budget (issue 11
item 4: steps, images seen and wall time, from the ``train.json`` and ``run.json`` beside ``kmax.json``), and the
Markdown gets a third table of it, so a table of models trained past the common budget says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from localcomp.errors import UserError

COLUMNS = ("exp1", "exp2", "exp2l", "exp3", "exp3l", "exp2l-k8", "exp2l-clean")
ROWS = ("1", "1-3", "1-5")
COLUMN_TITLES = {"exp1": "Exp.1", "exp2": "Exp.2", "exp2l": "Exp.2L", "exp3": "Exp.3", "exp3l": "Exp.3L",
                 "exp2l-k8": "k = 8", "exp2l-clean": "Exp.2L, object-free bg (ours)"}

# SCIENCE.md §6 (paper v3, Table 1); Exp.1 and the k = 8 control are discussed but not tabulated.
PAPER_KMAX: dict[str, dict[str, int]] = {
    "1": {"exp2": 1, "exp2l": 5},
    "1-3": {"exp2": 2, "exp2l": 9, "exp3": 3, "exp3l": 9},
    "1-5": {"exp2": 3, "exp2l": 10},
}


def training_label(min_objects: int, max_objects: int) -> str:
    """``(1, 1) -> "1"``, ``(1, 3) -> "1-3"``."""
    return str(min_objects) if min_objects == max_objects else f"{min_objects}-{max_objects}"


def share_found_beyond_training(entry: dict) -> float | None:
    """Mean ``location_found_rate`` (share of the K requested objects found) over the tested K
    above the row's training maximum (``training_objects`` "1-3" -> K > 3); None without them.
    Flat in K near 1 for a model that composes, near 1/K for one that draws a fixed number."""
    counts = entry.get("evaluation", {}).get("counts", {})
    top = int(str(entry["training_objects"]).split("-")[-1])
    rates = [c.get("location_found_rate") for k, c in counts.items() if int(k) > top]
    rates = [r for r in rates if r is not None]
    return sum(rates) / len(rates) if rates else None


def share_found_beyond_training_chance(entry: dict) -> float | None:
    """The chance baseline of :func:`share_found_beyond_training`: mean ``found_share_chance``
    over the same K (each sample re-scored against another scene's location set of that K,
    ``empirical.evaluation.kmax``). None when a ``kmax.json`` predates the field (or has no K
    above the training maximum)."""
    counts = entry.get("evaluation", {}).get("counts", {})
    top = int(str(entry["training_objects"]).split("-")[-1])
    pairs = [(c.get("location_found_rate"), c.get("found_share_chance")) for k, c in counts.items()
             if int(k) > top]
    pairs = [(r, c) for r, c in pairs if r is not None]
    if not pairs or any(c is None for _, c in pairs):
        return None
    return sum(c for _, c in pairs) / len(pairs)


def share_found_beyond_training_interval(entry: dict) -> list[float] | None:
    """Bootstrap 95% interval of :func:`share_found_beyond_training` over location sets; None
    without per-sample shares in the ``kmax.json``."""
    from empirical.evaluation.kmax import found_share_beyond

    top = int(str(entry["training_objects"]).split("-")[-1])
    pooled = found_share_beyond(entry.get("evaluation", {}), top)
    return None if pooled is None else pooled["bootstrap95"]


def _seed_order(seed) -> tuple:
    """Sort key of a training seed: ascending, a run without one last."""
    return (seed is None, seed or 0)


def assemble(entries: list[dict]) -> dict:
    """``entries``: dicts with ``experiment``, ``training_objects``, ``kmax`` (and optional ``source``,
    ``seed``).

    Returns ``{"columns", "rows": {label: {experiment: {"ours", "paper", "source", "seed", "seeds"}}}}``:
    the cell's fields are its lowest seed's, ``seeds`` ``{seed: fields}`` holds every seed's; two
    entries for the same (training set, experiment, seed) are an error.
    """
    rows: dict[str, dict[str, dict]] = {label: {} for label in ROWS}
    for entry in sorted(entries, key=lambda e: _seed_order(e.get("seed"))):
        label, exp = str(entry["training_objects"]), entry["experiment"]
        if exp not in COLUMNS:
            raise UserError(f"{entry.get('source', 'entry')}: experiment {exp!r} is not a Table 1 column")
        row = rows.setdefault(label, {})
        seed = entry.get("seed")
        fields = {"ours": entry["kmax"], "ours_requested_found": entry.get("kmax_requested_found"),
                  "share_found_beyond_training": share_found_beyond_training(entry),
                  "share_found_beyond_training_bootstrap95": share_found_beyond_training_interval(entry),
                  "share_found_beyond_training_chance": share_found_beyond_training_chance(entry),
                  "training_steps": entry.get("training_steps"),
                  "training_images": entry.get("training_images"),
                  "training_wall_seconds": entry.get("training_wall_seconds"),
                  "training_wall_from_step": entry.get("training_wall_from_step"),
                  "source": entry.get("source"), "seed": seed}
        if exp in row:
            if str(seed) in row[exp]["seeds"]:
                raise UserError(f"{entry.get('source', 'entry')}: second result for ({label}, {exp}"
                                f"{'' if seed is None else f', seed {seed}'}), first from "
                                f"{row[exp]['seeds'][str(seed)]['source']}")
            row[exp]["seeds"][str(seed)] = fields
            continue
        row[exp] = {**fields, "paper": PAPER_KMAX.get(label, {}).get(exp), "seeds": {str(seed): fields}}
    for label, paper in PAPER_KMAX.items():
        for exp, value in paper.items():
            rows[label].setdefault(exp, {"ours": None, "paper": value, "source": None})
    return {"columns": list(COLUMNS), "rows": rows}


def to_markdown(table: dict) -> str:
    """Markdown table: rows = training objects, cells = ``ours (paper)``."""
    head = "| training objects | " + " | ".join(COLUMN_TITLES[c] for c in table["columns"]) + " |"
    lines = [head, "|---" * (len(table["columns"]) + 1) + "|"]
    for label, row in table["rows"].items():
        cells = []
        for col in table["columns"]:
            cell = row.get(col, {"ours": None, "paper": None})
            paper = "–" if cell["paper"] is None else str(cell["paper"])
            cells.append(f"{' / '.join(_kmax_text(c) for c in _per_seed(cell))} ({paper})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Cells: our Kmax [our Kmax when extra objects are allowed, if measured] (paper's value, "
                 "arXiv 2509.16447 v3 Table 1), one per training seed where several ran (seed order, "
                 "separated by /); · = not run, – = not in the paper.")
    per_seed = [[_per_seed(row.get(col, {})) for col in table["columns"]] for row in table["rows"].values()]

    def section(field: str, caption: str, text) -> None:
        """A table of ``text(cell)`` per seed, under ``caption``, where any cell has ``field``."""
        if any(c.get(field) is not None for r in per_seed for cs in r for c in cs):
            lines.extend(["", caption, "", head, lines[1]])
            lines.extend(f"| {label} | " + " | ".join(" / ".join(text(c) for c in cs) for cs in row) + " |"
                         for label, row in zip(table["rows"], per_seed))

    section("share_found_beyond_training",
            "Share of the K requested objects found (extras allowed), mean over the tested K "
            "above the training maximum [bootstrap 95% over location sets, where the kmax.json "
            "has per-sample shares], and its chance baseline (the same samples scored against "
            "another scene's location set of the same K; n/a: the kmax.json predates it); "
            "one per seed:", _share_text)
    section("training_steps", "Training budget: steps (images seen; wall time of training, where recorded, "
            "from step 0 unless another step is named), one per seed:", _budget_text)
    return "\n".join(lines) + "\n"


def _per_seed(cell: dict) -> list[dict]:
    """The cell's values per seed, in seed order (the cell itself when it has no ``seeds``)."""
    seeds = cell.get("seeds")
    if not seeds:
        return [cell]
    return [seeds[k] for k in sorted(seeds, key=lambda k: _seed_order(None if k == "None" else int(k)))]


def _kmax_text(cell: dict) -> str:
    ours = "·" if cell.get("ours") is None else str(cell["ours"])
    if cell.get("ours_requested_found") is not None:
        ours += f" [{cell['ours_requested_found']}]"
    return ours


def _share_text(cell: dict) -> str:
    value, chance = cell.get("share_found_beyond_training"), cell.get("share_found_beyond_training_chance")
    if value is None:
        return "·"
    interval = cell.get("share_found_beyond_training_bootstrap95")
    text = f"{value:.2f}" + ("" if interval is None else f" [{interval[0]:.2f}, {interval[1]:.2f}]")
    return text + f" (chance {'n/a' if chance is None else f'{chance:.2f}'})"


def plot_per_k(entries: list[dict]):
    """Figure: per-K strict success, 'every requested object found' rate and the share of
    requested locations found, one line per run (entries whose ``kmax.json`` holds the
    evaluation); None when no entry has one. Where the evaluation carries them, the two rates
    are drawn with their Wilson 95% bands and the legend gives Kmax with its bootstrap 95%
    interval over location sets. Runs of one cell (experiment, training objects) with several
    seeds are named by seed in the legend, the later seeds with open markers."""
    import numpy as np

    from numerics.experiments.common import matplotlib_headless

    runs = [e for e in entries if "evaluation" in e]
    if not runs:
        return None
    plt = matplotlib_headless()
    fig, axes = plt.subplots(1, 3, figsize=(18, 4), sharey=True)
    # colour = experiment, line style and marker = training row, so that rows stay apart
    experiments = sorted({e["experiment"] for e in runs})
    colours = {exp: plt.cm.tab10(i % 10) for i, exp in enumerate(experiments)}
    row_styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]
    rows = sorted({str(e["training_objects"]) for e in runs})
    styles = {row: row_styles[i % len(row_styles)] for i, row in enumerate(rows)}
    # runs of one cell differ only by seed: name it in the legend, else their lines read the same
    cell_seeds = {}
    for e in runs:
        cell_seeds.setdefault((e["experiment"], str(e["training_objects"])), set()).add(e.get("seed"))
    for e in runs:
        ev = e["evaluation"]
        ks = sorted(int(k) for k in ev["per_k"])
        label = f"{COLUMN_TITLES.get(e['experiment'], e['experiment'])} ({e['training_objects']})"
        seeds = cell_seeds[(e["experiment"], str(e["training_objects"]))]
        if len(seeds) > 1:
            label += f", seed {e.get('seed')}"
        if ev.get("kmax_bootstrap95") is not None and "kmax" in ev:
            low, high = ev["kmax_bootstrap95"]
            label += f", Kmax {ev['kmax']} [{low}, {high}]"
        line, marker = styles[str(e["training_objects"])]
        style = dict(color=colours[e["experiment"]], linestyle=line, marker=marker, label=label)
        if len(seeds) > 1 and e.get("seed") != min(seeds, key=_seed_order):
            style["markerfacecolor"] = "white"  # a cell's later seeds: open markers
        axes[0].plot(ks, [ev["per_k"][str(k)] if str(k) in ev["per_k"] else ev["per_k"][k] for k in ks],
                     **style)
        counts = {int(k): v for k, v in ev["counts"].items()}
        if all("requested_found" in counts[k] for k in ks):
            axes[1].plot(ks, [counts[k]["requested_found"] for k in ks], **style)
        for ax, key in ((axes[0], "success_wilson95"), (axes[1], "requested_found_wilson95")):
            if all(counts[k].get(key) is not None for k in ks):  # older kmax.json files have none
                bands = np.array([counts[k][key] for k in ks], dtype=float)
                ax.fill_between(ks, bands[:, 0], bands[:, 1], color=style["color"], alpha=0.15, lw=0)
        located = [k for k in ks if counts[k].get("location_found_rate") is not None]
        if located:
            axes[2].plot(located, [counts[k]["location_found_rate"] for k in located], **style)
        chance = [k for k in located if counts[k].get("found_share_chance") is not None]
        if chance:  # dotted, unlabelled: the same share against another scene's locations
            axes[2].plot(chance, [counts[k]["found_share_chance"] for k in chance], color=style["color"],
                         linestyle=":", marker=None, lw=1)
    for ax, title in zip(axes, ("exactly K objects at the K locations (Kmax)",
                                "every requested object found, extras allowed",
                                "share of the K requested objects found (dotted: chance)")):
        ax.axhline(ev.get("threshold", 0.5), color="grey", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("requested objects K")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("success rate")
    axes[2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def _budget_text(cell: dict) -> str:
    steps, images = cell.get("training_steps"), cell.get("training_images")
    if steps is None:
        return "·"
    details = [] if images is None else [f"{images:,}"]
    seconds, start = cell.get("training_wall_seconds"), cell.get("training_wall_from_step")
    if seconds is not None:
        details.append(f"{seconds / 60:.0f} min" + (f" from step {start:,}" if start else ""))
    return f"{steps:,}" + (f" ({'; '.join(details)})" if details else "")


def load_entries(paths: list[str]) -> list[dict]:
    """Read ``kmax.json`` files (or run directories holding one)."""
    entries = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            path = path / "kmax.json"
        if not path.exists():
            raise UserError(f"--runs: {path} does not exist (run `localcomp clevr kmax` first)")
        data = json.loads(path.read_text())
        missing = [k for k in ("experiment", "training_objects", "kmax") if k not in data]
        if missing:
            raise UserError(f"--runs: {path} lacks {', '.join(missing)}")
        entries.append({**data, "source": str(path), "seed": training_seed(path.parent),
                        **training_budget(path.parent)})
    return entries


def training_budget(folder: Path) -> dict:
    """``{"training_steps", "training_images", "training_wall_seconds", "training_wall_from_step"}``
    of the run whose results are in ``folder``: the ``step`` of its ``train.json``, that times
    ``run.json``'s ``config.train.schedule.batch_size``, and ``train.json``'s ``wall_seconds`` /
    ``wall_seconds_from_step``; None where the file (or field) is missing."""
    steps = images = None
    record = {}
    train = folder / "train.json"
    if train.exists():
        record = json.loads(train.read_text())
        steps = record.get("step")
    run = folder / "run.json"
    if isinstance(steps, int) and run.exists():
        batch = json.loads(run.read_text()).get("config", {}).get("train", {}).get("schedule", {}).get("batch_size")
        images = steps * batch if isinstance(batch, int) else None
    return {"training_steps": steps if isinstance(steps, int) else None, "training_images": images,
            "training_wall_seconds": record.get("wall_seconds"),
            "training_wall_from_step": record.get("wall_seconds_from_step")}


def training_seed(folder: Path) -> int | None:
    """The training seed of the run whose results are in ``folder``: ``run.json``'s
    ``config.train.seed`` (``clevr train``), else ``kmax.run.json``'s ``seed``; None without them."""
    for name, keys in (("run.json", ("config", "train", "seed")), ("kmax.run.json", ("seed",))):
        path = folder / name
        if not path.exists():
            continue
        value = json.loads(path.read_text())
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int):
            return value
    return None
