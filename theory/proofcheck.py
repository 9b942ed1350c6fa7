"""The proof checker: ties every written proof in ``proofs/`` to the checks that verify it.

A proof names a check inline as ```check:NAME``` (backticks included). The checker fails
when a theorem lacks a proof file, a proof names no check, a named check does not exist in
either registry, a named check failed, a theorem has no registered check at all, or a check
name is registered in more than one registry (results are keyed by name).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping

from localcomp.checking import CheckRegistry, CheckResult, duplicate_names
from theory.theorems import THEOREMS

CHECK_REFERENCE = re.compile(r"`check:([A-Za-z0-9_]+)`")


def referenced_checks(markdown: str) -> list[str]:
    """Check names a proof cites, in order of first appearance."""
    seen: dict[str, None] = {}
    for name in CHECK_REFERENCE.findall(markdown):
        seen.setdefault(name, None)
    return list(seen)


def check_proofs(root: Path, registries: Iterable[CheckRegistry],
                 results: Mapping[str, CheckResult] | None = None) -> list[str]:
    """Return the list of problems (empty when every proof is tied to passing checks).

    ``results`` maps check names to results already run; a cited check absent from it is
    only checked for existence.
    """
    registries = list(registries)
    results = results or {}
    problems: list[str] = [f"check name {name!r} is registered as {' and '.join(kinds)}: "
                           "names must be unique" for name, kinds in duplicate_names(registries).items()]
    for thm in THEOREMS:
        if not any(r.checks(thm.id) for r in registries):
            problems.append(f"{thm.id}: no symbolic or numeric check is registered")
        path = root / thm.proof
        if not path.is_file():
            problems.append(f"{thm.id}: proof file {thm.proof} is missing")
            continue
        names = referenced_checks(path.read_text(encoding="utf-8"))
        if not names:
            problems.append(f"{thm.id}: {thm.proof} names no check")
        for name in names:
            if not any(name in r for r in registries):
                problems.append(f"{thm.id}: {thm.proof} names check {name!r}, which does not exist")
            elif name in results and not results[name].passed:
                problems.append(f"{thm.id}: {thm.proof} relies on check {name!r}, which failed")
    return problems
