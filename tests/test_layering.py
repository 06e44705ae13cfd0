"""The package's import graph: no cycles, and every import points down the stack.

The stack (lowest first): top-level helpers <- data <- models <- training | inference
<- labels | challenge <- release <- cli (labels: training sets made from other data: photo sets,
relabelled sets, rendered poses; release: a trained model -> a shipped model, with its challenge card).
Imports inside functions count too: a lazy import is still a dependency.
The package root (``facelm/__init__.py``) is the public API facade: it re-exports
``facelm.Landmarker`` lazily, so it sits at the top with the CLI.
A new module is covered the day it is added (the graph is read from the source tree).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facelm"

#: subpackage -> layer; top-level modules are layer 0 except the CLI entry points.
LAYERS = {"data": 1, "models": 2, "training": 3, "inference": 3, "labels": 4, "challenge": 4, "release": 5}
TOP_LEVEL_LAYER = {"cli": 6, "__main__": 6}
ROOT_LAYER = 6


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """facelm modules imported anywhere in ``path`` (``from facelm.x import y`` -> facelm.x[.y])."""
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("facelm"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("facelm"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
    return found & modules


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) - {module_name(p)} for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return ROOT_LAYER
    return LAYERS.get(parts[1], TOP_LEVEL_LAYER.get(parts[1], 0))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative DFS with colours)."""
    state: dict[str, int] = {}
    for root in sorted(edges):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(edges[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(edges.get(child, ())))))
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_package_has_no_import_cycles():
    # A package __init__ that imports its own modules is not a cycle in the sense that matters
    # (registration), so edges from a package to its submodules are left out.
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph().items()}
    assert find_cycle(edges) is None, f"import cycle: {' -> '.join(find_cycle(edges))}"


def test_imports_point_down_the_stack():
    upward = [
        f"{module} (layer {layer(module)}) imports {dep} (layer {layer(dep)})"
        for module, deps in graph().items()
        for dep in deps
        if layer(dep) > layer(module) or (layer(dep) == layer(module) == 3 and dep.split(".")[1] != module.split(".")[1])
    ]
    assert not upward, "\n".join(upward)


def test_top_level_holds_at_most_a_dozen_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


@pytest.mark.parametrize("sub", sorted(LAYERS))
def test_every_subpackage_says_what_it_holds(sub):
    init = PACKAGE / sub / "__init__.py"
    assert ast.get_docstring(ast.parse(init.read_text())), f"{init} has no docstring"


def test_the_label_rules_verbs_live_in_the_labels_package():
    """workflow/rules/labels.smk's verbs are facelm.labels modules, beside the rule file that runs them."""
    from facelm.verbs import COMMANDS

    rules = (PACKAGE.parents[1] / "workflow" / "rules" / "labels.smk").read_text()
    verbs = [verb for verb in COMMANDS if f"{{FACELM}} {verb} " in rules]
    assert sorted(verbs) == ["photo-set", "relabel", "synthesize-poses"]
    assert all(COMMANDS[verb].module.startswith("facelm.labels.") for verb in verbs), [COMMANDS[v].module for v in verbs]
