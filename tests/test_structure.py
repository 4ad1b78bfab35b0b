"""The package's shape: every module imports on its own, and no module depends on itself
through others (an import cycle), counting imports inside functions too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "hsikit"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> set[str]:
    """hsikit modules ``name`` imports at run time (anywhere in the file)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - child.level + 1]
                        + ([base] if base else [])
                    )
                for alias in child.names:  # a submodule, else a name defined in ``base``
                    submodule = f"{base}.{alias.name}"
                    found.add(submodule if submodule in MODULES else base)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in MODULES and m != name}


def _cycle() -> list[str] | None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (found := walk(target)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for name in sorted(graph):
        if name not in state and (found := walk(name)):
            return found
    return None


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, " → ".join(cycle or [])


def test_every_module_imports_in_a_fresh_interpreter():
    names = [n for n in MODULES if not n.endswith("__main__")]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)"
    result = subprocess.run(
        [sys.executable, "-c", script, *names], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
    assert len(names) > 40  # the walk found the package
