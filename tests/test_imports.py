"""The package's import graph has no cycle, counting imports inside functions too.

A function-local import hides a cycle from Python (it runs only when called) but not
from a reader; so every ``import keras_notes...`` anywhere in a module is an edge here.
"""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
PACKAGES = ("keras_notes", "keras_notes_benchmarks")


def _modules():
    """``{dotted name: file path}`` of every module in the package(s)."""
    found = {}
    for package in PACKAGES:
        for folder, _, names in os.walk(os.path.join(ROOT, package)):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


def imports_of(tree, modules):
    """The modules of ``modules`` that ``tree`` imports anywhere; ``from pkg import sub`` counts as ``pkg.sub``."""
    edges = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                       for alias in node.names]
        else:
            continue
        edges.update(target for target in targets if target in modules)
    return edges


def import_graph(modules):
    """``{module: set of package modules it imports}``."""
    graph = {}
    for name, path in modules.items():
        with open(path, encoding="utf-8") as file:
            graph[name] = imports_of(ast.parse(file.read(), path), modules) - {name}
    return graph


def find_cycle(graph):
    """One cycle as a list of modules (first repeated last), or None."""
    state = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def _without_package_inits(modules):
    """Package ``__init__`` files re-export their modules; the edges that matter start below them."""
    inits = {name for name, path in modules.items() if path.endswith("__init__.py")}
    return {name: edges - inits for name, edges in import_graph(modules).items() if name not in inits}


def test_the_package_imports_without_a_cycle():
    modules = _modules()
    assert "keras_notes.finetune.train" in modules and "keras_notes.finetune.multiworker_finetune" in modules
    graph = _without_package_inits(modules)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_neither_training_path_imports_the_other():
    graph = import_graph(_modules())
    assert "keras_notes.finetune.multiworker_finetune" not in graph["keras_notes.finetune.train"]
    assert "keras_notes.finetune.train" not in graph["keras_notes.finetune.multiworker_finetune"]


def test_the_cycle_finder_finds_a_function_local_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from keras_notes.finetune import train\n", {"keras_notes.finetune.train"}),
    ("import keras_notes.finetune.train as t\n", {"keras_notes.finetune.train"}),
    ("from keras_notes.finetune.train import finetune_one_machine\n", {"keras_notes.finetune.train"}),
    ("from keras_notes.finetune import FinetuneConfig\n", {"keras_notes.finetune"}),
])
def test_imports_inside_functions_and_aliases_are_edges(source, expected):
    modules = {"keras_notes.finetune": "", "keras_notes.finetune.train": ""}
    assert imports_of(ast.parse(source), modules) == expected
