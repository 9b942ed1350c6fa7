"""Named checks: a registry of functions that verify one statement each.

A check is a function of no arguments returning ``(passed, details)``. The registry times
it and turns an exception into a failed result (with the traceback in ``details``), so one
broken check never hides the others. Symbolic checks live in ``theory.symbolic_checks``,
numeric ones in ``numerics.checks``; both use this type so ``localcomp verify`` and the
proof checker can treat them alike.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

CheckFunction = Callable[[], "tuple[bool, str]"]


def duplicate_names(registries: Iterable["CheckRegistry"]) -> dict[str, list[str]]:
    """Check names registered in more than one registry, with the kinds that hold them.

    ``localcomp verify`` and the proof checker key results by name, so a name must be unique
    across the symbolic and numeric registries (else a failure is attributed to the wrong check).
    """
    kinds: dict[str, list[str]] = {}
    for registry in registries:
        for check in registry.checks():
            kinds.setdefault(check.name, []).append(registry.kind)
    return {name: ks for name, ks in kinds.items() if len(ks) > 1}


@dataclass(frozen=True)
class CheckResult:
    name: str
    theorem: str
    statement: str
    passed: bool
    details: str
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    name: str
    theorem: str
    statement: str
    function: CheckFunction

    def run(self) -> CheckResult:
        start = time.perf_counter()
        try:
            passed, details = self.function()
            passed = bool(passed)
        except Exception:  # a crashing check is a failed check, reported, not raised
            passed, details = False, traceback.format_exc()
        return CheckResult(self.name, self.theorem, self.statement, passed, str(details),
                           time.perf_counter() - start)


class CheckRegistry:
    """An ordered collection of named checks, each tied to one theorem id (``"T1"``...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._checks: dict[str, Check] = {}

    def register(self, theorem: str, statement: str, name: str | None = None):
        """Decorator: ``@REGISTRY.register("T1", "cross-block mixed partials vanish")``."""

        def decorate(function: CheckFunction) -> CheckFunction:
            check_name = name or function.__name__
            if check_name in self._checks:
                raise ValueError(f"{self.kind} check {check_name!r} registered twice")
            self._checks[check_name] = Check(check_name, theorem, statement, function)
            return function

        return decorate

    def __contains__(self, name: str) -> bool:
        return name in self._checks

    def __len__(self) -> int:
        return len(self._checks)

    def checks(self, theorem: str | None = None) -> list[Check]:
        return [c for c in self._checks.values() if theorem is None or c.theorem == theorem]

    def get(self, name: str) -> Check:
        return self._checks[name]

    def run(self, theorem: str | None = None, names: Iterable[str] | None = None) -> list[CheckResult]:
        wanted = set(names) if names is not None else None
        return [c.run() for c in self.checks(theorem) if wanted is None or c.name in wanted]
