"""The import graph has no cycles: between the top-level packages (backends <- checkers <- reports,
workloads <- harness), and between the sub-packages of harness/. Read from the source (every
import statement, also inside functions; only ``if TYPE_CHECKING:`` blocks are left out), so a
late import cannot hide a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("backends", "checkers", "reports", "workloads", "harness")
# What each top-level package may import (besides itself).
ALLOWED = {
    "backends": set(),
    "checkers": set(),
    "reports": {"checkers"},
    "workloads": {"backends", "checkers"},
    "harness": {"backends", "checkers", "reports", "workloads"},
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the project modules that ``path`` imports."""
    tree = ast.parse(path.read_text(), str(path))
    mod = _module(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            for a in node.names:  # from pkg import submodule
                sub = ROOT.joinpath(*target.split("."), a.name)
                if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
                    found.add(f"{target}.{a.name}")
    return {f for f in found if f.split(".")[0] in PACKAGES}


def _graph(level: int) -> dict[str, set[str]]:
    """Edges between module-name prefixes of ``level`` parts (1: top-level packages; 2: e.g.
    harness.run)."""
    g: dict[str, set[str]] = {}
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*.py"):
            src = ".".join(_module(path).split(".")[:level])
            for dst in _imports(path):
                d = ".".join(dst.split(".")[:level])
                if d != src:
                    g.setdefault(src, set()).add(d)
    return g


def _cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_top_level_packages_import_one_way() -> None:
    g = _graph(1)
    bad = {(a, b) for a, bs in g.items() for b in bs if b not in ALLOWED[a]}
    assert not bad, f"imports against the layering: {sorted(bad)}"
    assert _cycle(g) is None


def test_harness_sub_packages_have_no_cycle() -> None:
    g = {a: {b for b in bs if b.startswith("harness.")} for a, bs in _graph(2).items()}
    g = {a: bs for a, bs in g.items() if a.startswith("harness.")}
    assert _cycle(g) is None, " -> ".join(_cycle(g) or [])


def test_the_lower_packages_load_no_harness_module() -> None:
    """At run time too: importing every module of backends, checkers, reports and workloads in
    a fresh interpreter loads nothing of harness (a late import inside a function included, as
    far as module import runs it)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "for top in ('backends', 'checkers', 'reports', 'workloads'):\n"
        "    pkg = importlib.import_module(top)\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, top + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'harness'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


if __name__ == "__main__":
    for lvl in (1, 2):
        g = _graph(lvl)
        print(f"level {lvl}:", {a: sorted(b) for a, b in sorted(g.items())})
        print("  cycle:", _cycle(g))
