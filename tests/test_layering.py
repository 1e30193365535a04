"""The import graph has no cycles: between the top-level packages (backends <- checkers <- reports,
workloads <- harness), and between the sub-packages of harness/. Read from the source (every
import statement, also inside functions; only ``if TYPE_CHECKING:`` blocks are left out), so a
late import cannot hide a cycle. And the rooms of harness/ keep their shape: no module named
after a sub-package, three runtimes as peers, a server kind's facts in one place."""

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
    "checkers": {"backends"},  # backends.errors only (see below)
    "reports": {"backends", "checkers"},  # backends.errors only (see below)
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


def test_checkers_and_reports_import_only_the_root_error_class() -> None:
    """The checkers and reports stay pure (no lock client, no option parsing): of backends
    they import only ``backends.errors``, the root error class every package shares."""
    bad = sorted(
        f"{path.relative_to(ROOT)}: {dst}"
        for top in ("checkers", "reports")
        for path in (ROOT / top).rglob("*.py")
        for dst in _imports(path)
        if dst.split(".")[0] == "backends" and dst not in ("backends", "backends.errors")
    )
    assert not bad, bad


def test_every_user_facing_error_derives_from_the_root() -> None:
    """One class catches every failure the project reports to a user in one line."""
    from backends.errors import LockHarnessError
    from backends.registry import UnknownBackend
    from checkers.history import HistoryError
    from harness.campaign.document import PublishError
    from harness.campaign.spec import SpecError
    from harness.cli.errors import UserError, expected_errors
    from harness.clock import ClockShimError
    from harness.containers.engine import EngineError
    from harness.nemesis.base import NemesisError, NotApplicable
    from harness.nemesis.options import OptionError
    from harness.net.firewall import FirewallError
    from harness.runtime import ServerStartError
    from harness.toxiproxy.client import ToxiproxyError
    from harness.toxiproxy.toxics import ToxicError
    from reports.render import ReportError
    from reports.serve import ServeError
    from workloads.registry import UnknownWorkload

    for cls in (
        UnknownBackend, HistoryError, PublishError, SpecError, UserError, ClockShimError,
        EngineError, NemesisError, NotApplicable, OptionError, FirewallError, ServerStartError,
        ToxiproxyError, ToxicError, ReportError, ServeError, UnknownWorkload,
    ):  # fmt: skip
        assert issubclass(cls, LockHarnessError), cls
    assert LockHarnessError in expected_errors()


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


def _defined(path: Path) -> set[str]:
    """Names a module binds at its top level (also inside top-level if/try blocks)."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text()).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.If | ast.Try):
            body += node.body + node.orelse + getattr(node, "finalbody", [])
            body += [n for h in getattr(node, "handlers", []) for n in h.body]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def test_every_import_of_a_project_module_resolves() -> None:
    """``from harness.run import containers`` after a rename fails only when that line runs
    (a late import inside a function): every ``from X import name`` of the project, read
    from the source, names a module of X or a name X binds."""
    missing = []
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*.py"):
            mod = _module(path)
            pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom):
                    continue
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] not in PACKAGES:
                    continue
                where = ROOT.joinpath(*target.split("."))
                source = where / "__init__.py" if where.is_dir() else where.with_suffix(".py")
                if not source.exists():
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {target}")
                    continue
                bound = _defined(source)
                for a in node.names:
                    sub = where / a.name
                    if a.name == "*" or a.name in bound or sub.with_suffix(".py").exists():
                        continue
                    if (sub / "__init__.py").exists():
                        continue
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {target}.{a.name}")
    assert not missing, f"imports that name nothing: {missing}"


def test_no_two_rooms_share_a_name() -> None:
    """A module of harness/ is never named after one of its sub-packages (``run/containers.py``
    beside ``harness/containers/`` once meant two things): a name says which room it is."""
    rooms = {p.name for p in (ROOT / "harness").iterdir() if (p / "__init__.py").exists()}
    clashes = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "harness").rglob("*.py")
        if p.stem in rooms and p.parent.name != p.stem
    )
    assert not clashes, f"modules named after a sub-package of harness: {clashes}"


def test_the_runtimes_are_peers_behind_one_interface() -> None:
    """Local processes, Docker containers and a compose project's containers: each runtime
    derives from ``Runtime`` and each cluster from ``Cluster``, and none from another peer."""
    from harness.containers.compose import ComposeCluster, ComposeRuntime
    from harness.containers.docker_runtime import DockerCluster, DockerRuntime
    from harness.runtime import Cluster, LocalRuntime, ProcessCluster, Runtime

    for runtime in (LocalRuntime, DockerRuntime, ComposeRuntime):
        assert runtime.__bases__ == (Runtime,), runtime
    for cluster in (ProcessCluster, DockerCluster, ComposeCluster):
        assert cluster.__bases__ == (Cluster,), cluster


def test_a_server_kind_owns_its_facts() -> None:
    """No module keeps a table keyed by server kind names (images, services, ports ...): a
    kind's facts are on its class in harness/runtime/, so a new kind is one module."""
    from harness.runtime.kinds import KINDS

    tables = []
    for path in (ROOT / "harness").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, ast.Dict):
                keys = {k.value for k in value.keys if isinstance(k, ast.Constant)}
                if len(keys & set(KINDS)) >= 2:
                    tables.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not tables, f"tables keyed by server kind: {tables}"


def test_generic_code_knows_no_backend_by_name() -> None:
    """What a lock can do is declared on its Backend class (``own_store``, ``min_down_ms``,
    ``fenced``, ``expiry``): the engine and the workloads keep no table keyed by backend names,
    so a third-party backend gets the same treatment as a built-in one. (Names that are also a
    store's or a server kind's, like "redis", are left out: a table of stores is fine.)"""
    from backends.registry import names
    from harness.runtime.kinds import KINDS
    from workloads import stores

    backends = set(names()) - set(stores.names()) - set(KINDS)
    tables = []
    for top in ("harness", "workloads"):
        for path in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Dict):
                    keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                    if len(keys & backends) >= 2:
                        tables.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not tables, f"tables keyed by backend name: {tables}"


def test_every_own_store_is_a_store() -> None:
    from backends.registry import backend_class, names
    from workloads import stores

    for name in names():
        own = backend_class(name).own_store
        assert own is None or own in stores.names(), (name, own)


def test_one_registration_rule() -> None:
    """Backends, workloads, nemeses, stores and checkers are all found through an entry point
    group, the built-in ones registered there as a third party's would be: each entry point
    loads a class of the right kind (a checker: a CheckerSpec), named as it is registered."""
    from importlib.metadata import entry_points

    from backends.base import Backend
    from checkers import CheckerSpec
    from harness.nemesis.base import Nemesis
    from workloads.base import Workload
    from workloads.stores.base import SetStore

    groups = {
        "harness.backends": (Backend, 15),
        "harness.workloads": (Workload, 3),
        "harness.nemeses": (Nemesis, 9),
        "harness.stores": (SetStore, 5),
    }
    checkers = entry_points(group="harness.checkers")  # a checker is a CheckerSpec, not a class
    assert {"mutex", "fencing", "perf", "set", "jobs"} <= set(checkers.names)
    for ep in checkers:
        spec = ep.load()
        assert isinstance(spec, CheckerSpec) and spec.name == ep.name and spec.reads_ops, ep.name
    for group, (base, built_in) in groups.items():
        eps = entry_points(group=group)
        assert len(eps) >= built_in, group
        for ep in eps:
            cls = ep.load()
            assert issubclass(cls, base), (group, ep.name)
            if base is not SetStore:  # a store's name is its entry point's only
                assert cls.name == ep.name, (group, ep.name, cls.name)


if __name__ == "__main__":
    for lvl in (1, 2):
        g = _graph(lvl)
        print(f"level {lvl}:", {a: sorted(b) for a, b in sorted(g.items())})
        print("  cycle:", _cycle(g))
