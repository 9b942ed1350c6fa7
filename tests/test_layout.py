"""The empirical layer's shape: no import circles, data flowing one way, the README's tree true."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMPIRICAL = ROOT / "empirical"

# Data flows one way: a subpackage may import only from its own rank or below.
RANK = {"clevr": 0, "detection": 1, "models": 1, "training": 2, "evaluation": 3, "diagnostics": 3,
        "toy": 4, "t2i": 4, "validation": 5, "cli": 6}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def empirical_imports(path: Path, modules: set[str]) -> set[str]:
    """Every ``empirical`` module that ``path`` imports anywhere (top level or inside a function,
    since a lazy import still makes a circle of responsibilities)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(EMPIRICAL.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): empirical_imports(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (EMPIRICAL / parts[1]).is_dir()) else None


def test_find_cycle_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_empirical_layer_has_no_import_circle():
    graph = import_graph()
    assert "empirical.evaluation.kmax" in graph and "empirical.detection.detector" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_data_flows_one_way_between_subpackages():
    backwards = []
    for module, deps in import_graph().items():
        source = subpackage(module)
        for dep in deps:
            target = subpackage(dep)
            if source and target and RANK[target] > RANK[source]:
                backwards.append(f"{module} imports {dep}")
    assert not backwards, backwards


def test_every_subpackage_has_a_rank_and_the_readme_lists_it():
    folders = sorted(p.name for p in EMPIRICAL.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    flat = sorted(p.name for p in EMPIRICAL.glob("*.py") if p.name != "__init__.py")
    assert not flat, f"modules outside a subpackage: {flat}"
    assert set(folders) <= set(RANK), set(folders) - set(RANK)
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("\n## ", 4)] if "\n## " in layout[4:] else layout
    listed = set(re.findall(r"`empirical/(\w+)/`", layout))
    assert listed == set(folders), f"README layout lists {sorted(listed)}, empirical/ has {folders}"
