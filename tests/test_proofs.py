"""The proof checker and the ``localcomp verify --only symbolic`` report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from localcomp.provenance import repo_root
from numerics.checks import NUMERIC_CHECKS
from theory.proofcheck import check_proofs
from theory.symbolic_checks import SYMBOLIC_CHECKS

REGISTRIES = [SYMBOLIC_CHECKS, NUMERIC_CHECKS]


def test_verify_symbolic_report(tmp_path):
    from localcomp.cli import main

    out = tmp_path / "r.json"
    code = main(["verify", "--only", "symbolic", "--json", str(out), "--quiet"])
    report = json.loads(out.read_text())
    statuses = {t["id"]: t["symbolic"]["status"] for t in report["theorems"]}
    assert statuses == {**{f"T{i}": "verified" for i in range(1, 9)}, "T9": "not-applicable"}
    problems = check_proofs(repo_root(), REGISTRIES)
    assert all(p.startswith("T9") for p in problems), problems
    assert code == (0 if not problems else 1)


def test_verify_numeric_report(tmp_path):
    """Every numeric check of ``localcomp verify`` runs in CI (about 1 min on 2 cores)."""
    from localcomp.cli import main

    out = tmp_path / "r.json"
    code = main(["verify", "--only", "numeric", "--out", str(tmp_path / "v"), "--json", str(out), "--quiet"])
    report = json.loads(out.read_text())
    assert {t["id"]: t["numeric"]["status"] for t in report["theorems"]} == {
        f"T{i}": "verified" for i in range(1, 10)}
    checks = json.loads((tmp_path / "v" / "checks.json").read_text())
    assert len(checks) == len(NUMERIC_CHECKS) and all(c["passed"] for c in checks), [
        (c["name"], c["details"]) for c in checks if not c["passed"]]
    assert code == 0


def _copy_proofs(tmp_path: Path) -> Path:
    shutil.copytree(repo_root() / "proofs", tmp_path / "proofs")
    return tmp_path


def test_checker_flags_nonexistent_check(tmp_path):
    root = _copy_proofs(tmp_path)
    proof = root / "proofs" / "T1_cpc_implies_lcs.md"
    proof.write_text(proof.read_text() + "\nBogus step: `check:no_such_check_anywhere`.\n")
    problems = check_proofs(root, REGISTRIES)
    assert any("no_such_check_anywhere" in p and p.startswith("T1") for p in problems)


def test_checker_flags_missing_proof(tmp_path):
    root = _copy_proofs(tmp_path)
    (root / "proofs" / "T4_length_generalization.md").unlink()
    problems = check_proofs(root, REGISTRIES)
    assert any(p.startswith("T4") and "missing" in p for p in problems)


def test_checker_flags_failed_check():
    from localcomp.checking import CheckResult

    failed = CheckResult("t4_score_identity", "T4", "", False, "forced", 0.0)
    problems = check_proofs(repo_root(), REGISTRIES, {"t4_score_identity": failed})
    assert any("failed" in p and p.startswith("T4") for p in problems)


def test_check_names_are_unique_across_symbolic_and_numeric():
    symbolic = {c.name for c in SYMBOLIC_CHECKS.checks()}
    numeric = {c.name for c in NUMERIC_CHECKS.checks()}
    assert not symbolic & numeric
    from localcomp.verify import registries

    assert set(registries()) == {"symbolic", "numeric"}  # raises on a duplicate name


def test_duplicate_check_name_is_rejected_by_verify_and_the_proof_checker():
    import pytest

    from localcomp.checking import CheckRegistry
    from localcomp.verify import require_unique_names

    clone = CheckRegistry("numeric")
    name = SYMBOLIC_CHECKS.checks("T7")[0].name
    clone.register("T7", "same name as a symbolic check", name=name)(lambda: (True, ""))
    with pytest.raises(ValueError, match=name):
        require_unique_names([SYMBOLIC_CHECKS, clone])
    problems = check_proofs(repo_root(), [SYMBOLIC_CHECKS, NUMERIC_CHECKS, clone])
    assert any(name in p and "unique" in p for p in problems)
