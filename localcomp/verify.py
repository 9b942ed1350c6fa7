"""``localcomp verify``: run every symbolic and numeric check, tie them to the proofs, report.

The JSON report has a fixed shape that other tools read:
``{"package_version", "git_revision", "theorems": [{"id", "title", "proof",
"symbolic": {"status", "checks": [{"name", "passed", "seconds"}]}, "numeric": {...}}]}``.
A kind of check skipped with ``--only`` is reported as ``"pending"`` with no checks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import localcomp
from localcomp.checking import CheckRegistry, CheckResult, duplicate_names
from localcomp.provenance import git_revision, repo_root, write_json_atomic, write_run_record

KINDS = ("symbolic", "numeric")


def registries() -> dict[str, CheckRegistry]:
    from numerics.checks import NUMERIC_CHECKS
    from theory.symbolic_checks import SYMBOLIC_CHECKS

    regs = {"symbolic": SYMBOLIC_CHECKS, "numeric": NUMERIC_CHECKS}
    require_unique_names(regs.values())
    return regs


def require_unique_names(regs) -> None:
    """Raise ``ValueError`` when a check name is registered twice (results are keyed by name)."""
    duplicates = duplicate_names(regs)
    if duplicates:
        raise ValueError("check names must be unique across registries; duplicated: " + ", ".join(
            f"{name} ({' and '.join(kinds)})" for name, kinds in sorted(duplicates.items())))


def _status(kind: str, applicable: bool, ran: bool, results: list[CheckResult]) -> str:
    if not applicable:
        return "not-applicable"
    if not ran:
        return "pending"
    if not results:
        # a symbolic check is required for every applicable theorem; numeric ones may be pending
        return "failed" if kind == "symbolic" else "pending"
    return "verified" if all(r.passed for r in results) else "failed"


def build_report(only: str | None = None, progress=None) -> tuple[dict, list[CheckResult], list[str]]:
    """Run the checks; return (report, all results, proof problems)."""
    from theory.proofcheck import check_proofs
    from theory.theorems import THEOREMS

    regs = registries()
    all_results: list[CheckResult] = []
    theorems = []
    for thm in THEOREMS:
        entry = {"id": thm.id, "title": thm.title, "proof": thm.proof}
        for kind in KINDS:
            ran = only in (None, kind)
            applicable = thm.symbolic if kind == "symbolic" else True
            results = regs[kind].run(thm.id) if ran and applicable else []
            if progress:
                for r in results:
                    progress(kind, r)
            all_results.extend(results)
            entry[kind] = {
                "status": _status(kind, applicable, ran, results),
                "checks": [{"name": r.name, "passed": r.passed, "seconds": round(r.seconds, 4)}
                           for r in results],
            }
        theorems.append(entry)
    report = {"package_version": localcomp.__version__, "git_revision": git_revision(),
              "theorems": theorems}
    problems = check_proofs(repo_root(), regs.values(), {r.name: r for r in all_results})
    return report, all_results, problems


def format_table(report: dict) -> str:
    rows = [("theorem", "title", "symbolic", "numeric", "seconds")]
    for t in report["theorems"]:
        seconds = sum(c["seconds"] for k in KINDS for c in t[k]["checks"])
        rows.append((t["id"], t["title"], t["symbolic"]["status"], t["numeric"]["status"], f"{seconds:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    def progress(kind: str, result: CheckResult) -> None:
        mark = "ok  " if result.passed else "FAIL"
        print(f"  [{mark}] {result.theorem} {kind:8s} {result.name} ({result.seconds:.2f}s)",
              file=sys.stderr, flush=True)

    report, results, problems = build_report(args.only, progress=None if args.quiet else progress)
    print(format_table(report))
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"\nFAILED {r.theorem} {r.name}: {r.statement}\n{r.details}", file=sys.stderr)
    for problem in problems:
        print(f"PROOF CHECK: {problem}", file=sys.stderr)
    if args.json:
        write_json_atomic(args.json, report)
    if args.out:
        out = Path(args.out)
        write_json_atomic(out / "verify.json", report)
        write_json_atomic(out / "checks.json", [r.as_dict() for r in results])
        write_run_record(out, {"only": args.only})
    ok = not failed and not problems
    print(f"\n{len(results) - len(failed)}/{len(results)} checks passed; "
          f"proof check {'passed' if not problems else f'found {len(problems)} problem(s)'}")
    return 0 if ok else 1


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("verify", help="run every symbolic and numeric check of T1-T9",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=KINDS, help="run only one kind of check")
    p.add_argument("--json", metavar="PATH", help="write the JSON report here")
    p.add_argument("--out", metavar="DIR", help="write verify.json, checks.json (with details) and run.json here")
    p.add_argument("--quiet", action="store_true", help="no per-check progress lines")
    p.set_defaults(func=run)
