"""The import graph of the package's own modules (recon/, cta/, vl/, vidllm/) has no cycles, and the
leaves (recon/, cta/, vl/) never import vidllm.

Every import statement counts: module level and function-local alike. A function-local import is
still a dependency of the module; hiding one side of a circle inside a function only moves the
failure to the first call (and makes import order matter), which is how ``recon.model`` ↔
``recon.vggt_loader`` and ``vl.prompts`` ↔ ``vl.tokenizer`` were once tied. Only imports under
``if TYPE_CHECKING:`` are left out (never executed). An import resolves to the most specific
module of the package that exists (``from recon.heads.dpt import DPTHead`` → ``recon.heads.dpt``);
the parent packages it also initialises are not counted as edges.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("recon", "cta", "vl", "vidllm")
LEAVES = ("recon", "cta", "vl")


def _modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    out = {}
    for pkg in packages:
        for path in (root / pkg).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports anywhere in its file (TYPE_CHECKING blocks excepted)."""
    found: set[str] = set()

    def resolve(target: str) -> None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit_else(child)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    resolve(alias.name)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - child.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                for alias in child.names:
                    resolve(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
            visit(child)

    def visit_else(node: ast.If) -> None:
        for stmt in node.orelse:
            visit(ast.Module(body=[stmt], type_ignores=[]))

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found


def import_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    modules = _modules(root, packages)
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    cycles.append(sorted(comp))
    return cycles


def test_no_import_cycles_among_package_modules():
    graph = import_graph(ROOT)
    assert "recon.vggt_loader" in graph and "vidllm.cli" in graph  # the walk found the package
    assert import_cycles(graph) == []


def test_leaves_never_import_vidllm():
    graph = import_graph(ROOT)
    bad = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        if m.split(".")[0] in LEAVES
        for t in targets
        if t.split(".")[0] == "vidllm"
    )
    assert bad == []


def test_cycle_finder_counts_function_local_imports(tmp_path):
    """The shape of the old circles: one side imports at module level, the other inside a function."""
    pkg = tmp_path / "vl"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "prompts.py").write_text("from vl.tokenizer import TOKEN\n")
    (pkg / "tokenizer.py").write_text("TOKEN = 1\n\ndef build():\n    from vl.prompts import words\n")
    (pkg / "other.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vl import prompts\nfrom . import tokenizer\n"
    )
    graph = import_graph(tmp_path, packages=("vl",))
    assert graph["vl.other"] == {"vl.tokenizer"}  # relative import resolved, TYPE_CHECKING skipped
    assert import_cycles(graph) == [["vl.prompts", "vl.tokenizer"]]


@pytest.mark.parametrize("module", ["recon.vggt_loader", "recon.model", "vl.tokenizer", "vl.prompts"])
def test_module_imports_in_fresh_interpreter(module):
    """Each side of a former circle imports first, on its own."""
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
