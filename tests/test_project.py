"""The project's own contracts: README commands, CI entry, CLI wiring, verify report shape."""

import json
import re
from pathlib import Path

import pytest

from localcomp.checking import CheckRegistry
from localcomp.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    ci_command = [l for l in (ROOT / ".ci/run").read_text().splitlines()
                  if l and not l.startswith(("#", "set ", "cd "))]
    assert len(ci_command) == 1
    assert ci_command[0] in (ROOT / "README.md").read_text()


def test_cli_help_lists_every_job(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for job in ("verify", "toy", "clevr", "t2i"):
        assert re.search(rf"^\s+{job}\s", out, re.M)


def test_registry_reports_a_crashing_check_as_failed():
    registry = CheckRegistry("test")

    @registry.register("T1", "a check that raises")
    def broken():
        raise RuntimeError("boom")

    @registry.register("T1", "a check that passes")
    def fine():
        return True, "ok"

    results = {r.name: r for r in registry.run("T1")}
    assert not results["broken"].passed and "boom" in results["broken"].details
    assert results["fine"].passed
    with pytest.raises(ValueError):
        registry.register("T1", "duplicate", name="fine")(lambda: (True, ""))


def test_atomic_writes_are_group_readable(tmp_path):
    import os
    import stat

    from localcomp.provenance import write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH and not mode & stat.S_IWOTH, oct(mode)
