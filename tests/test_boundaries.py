"""Import boundaries between lgkit's subpackages, read from the source (AST, no imports run).

Each subpackage's ``__init__`` states what it may import; this test holds them to it,
for module-level and function-level (lazy) imports alike. Between single modules the
imports run one way: no module depends on itself through others (``test_no_import_cycle``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LGKIT = Path(__file__).resolve().parent.parent / "lgkit"

#: leaf modules every package may import
LEAVES = ("lgkit.errors", "lgkit.schema", "lgkit.fsio", "lgkit.locks")

#: package -> (forbidden import prefixes, or None) and (allowed lgkit prefixes, or None: any)
RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "engine": {"forbid": ("lgkit.analysis", "lgkit.viz", "lgkit.series")},
    "analysis": {
        "forbid": (
            "torch",
            "transformers",
            "lgkit.engine",
            "lgkit.models",
            "lgkit.viz",
            "lgkit.series",
        )
    },
    "formats": {"allow": ("lgkit.formats", *LEAVES)},
    "models": {"allow": ("lgkit.models", *LEAVES)},
    "data": {"forbid": ("lgkit.analysis", "lgkit.viz", "lgkit.series")},
    "viz": {"forbid": ("torch",)},
    # scoring is a thin layer over the engine: never the notebooks' series, plots, data builders
    "score": {"forbid": ("lgkit.viz", "lgkit.series", "lgkit.data", "lgkit.train")},
    "train": {"allow": ("lgkit.train", "lgkit.engine", "lgkit.models", "lgkit.formats", *LEAVES)},
}

#: documented exceptions: (file relative to lgkit/, imported module)
EXCEPTIONS: set[tuple[str, str]] = set()


def _imports(path: Path) -> list[tuple[int, str]]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(LGKIT.parent).with_suffix("")
    package = list(rel.parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            # "from lgkit import analysis" imports the subpackage lgkit.analysis
            if mod == "lgkit":
                out += [(node.lineno, f"lgkit.{a.name}") for a in node.names]
    return out


def _matches(mod: str, prefixes: tuple[str, ...]) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def _violations(package: str) -> list[str]:
    rule = RULES[package]
    bad = []
    for path in sorted((LGKIT / package).rglob("*.py")):
        rel = path.relative_to(LGKIT).as_posix()
        for line, mod in _imports(path):
            if (rel, mod) in EXCEPTIONS:
                continue
            if "forbid" in rule and _matches(mod, rule["forbid"]):
                bad.append(f"lgkit/{rel}:{line} imports {mod}")
            if "allow" in rule and mod.startswith("lgkit") and not _matches(mod, rule["allow"]):
                bad.append(f"lgkit/{rel}:{line} imports {mod}")
    return bad


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_only_what_it_may(package):
    assert _violations(package) == []


def test_leaves_import_only_leaves():
    """A leaf may import another leaf (locks raises errors' InputError), nothing else of lgkit."""
    bad = [
        f"lgkit/{leaf.split('.')[1]}.py:{line} imports {mod}"
        for leaf in LEAVES
        for line, mod in _imports(LGKIT / f"{leaf.split('.')[1]}.py")
        if mod.startswith("lgkit") and not _matches(mod, LEAVES)
    ]
    assert bad == []


def test_the_checker_sees_violations(tmp_path, monkeypatch):
    fake = tmp_path / "lgkit" / "analysis"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text(
        "def f():\n    import torch\n    from lgkit import series\n    from ..engine import run\n"
    )
    monkeypatch.setattr(f"{__name__}.LGKIT", tmp_path / "lgkit")
    assert _violations("analysis") == [
        "lgkit/analysis/x.py:2 imports torch",
        "lgkit/analysis/x.py:3 imports lgkit.series",
        "lgkit/analysis/x.py:4 imports lgkit.engine",
    ]


def test_every_subpackage_states_its_job_and_imports():
    for init in sorted(LGKIT.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "May import" in doc or "may import" in doc, (
            f"{init} docstring: say what it may import"
        )


# ---- cycles between modules ----


def _module_index() -> dict[str, Path]:
    """Every lgkit module by dotted name; a package is named by its ``__init__``."""
    out = {}
    for path in sorted(LGKIT.rglob("*.py")):
        rel = path.relative_to(LGKIT.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def _from_module(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module of ``from … import``, relative levels resolved."""
    if not node.level:
        return node.module or ""
    rel = path.relative_to(LGKIT.parent).with_suffix("")
    package = list(rel.parts[:-1])
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _literal_all(path: Path) -> list[str]:
    """A module's ``__all__`` when it is a literal list or tuple of strings, else []."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            try:
                return list(ast.literal_eval(node.value))
            except ValueError:
                return []
    return []


def _reexports(index: dict[str, Path]) -> dict[str, dict[str, tuple[str, str]]]:
    """package -> {name: (module, name there)} for the names its ``__init__`` takes from
    other modules: top-level ``from … import`` (under ``if TYPE_CHECKING:`` too, where a
    lazy ``__getattr__`` serves them), ``*`` through the source's literal ``__all__``, and a
    top-level dict literal mapping names to lgkit module names (``lgkit/__init__``'s lazy map).
    """
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for pkg, path in index.items():
        if path.name != "__init__.py":
            continue
        names: dict[str, tuple[str, str]] = {}
        body = list(ast.parse(path.read_text(encoding="utf-8")).body)
        body += [n for node in body if isinstance(node, ast.If) for n in node.body]
        for node in body:
            if isinstance(node, ast.ImportFrom):
                mod = _from_module(node, path)
                if mod not in index or mod == pkg:
                    continue
                for a in node.names:
                    if a.name == "*":
                        names.update({n: (mod, n) for n in _literal_all(index[mod])})
                    else:
                        names[a.asname or a.name] = (mod, a.name)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                for k, v in zip(node.value.keys, node.value.values, strict=True):
                    if (
                        isinstance(k, ast.Constant)
                        and isinstance(v, ast.Constant)
                        and isinstance(v.value, str)
                        and v.value in index
                    ):
                        names[str(k.value)] = (v.value, str(k.value))
        out[pkg] = names
    return out


def _resolve(mod: str, name: str, index, exports) -> str:
    """The module ``from mod import name`` depends on: the submodule ``mod.name`` if there
    is one, else the module that defines ``name``, followed through re-exporting packages."""
    seen = set()
    while f"{mod}.{name}" not in index and name in exports.get(mod, {}) and mod not in seen:
        seen.add(mod)
        mod, name = exports[mod][name]
    return f"{mod}.{name}" if f"{mod}.{name}" in index else mod


def _import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported lgkit module: first line}, every import of the file counted.

    The rule, precisely:

    - nodes are lgkit's modules; a package is the node of its ``__init__``;
    - every ``import``/``from … import`` anywhere in a file (module level, inside a function,
      under ``if TYPE_CHECKING:``) is an edge: the reader needs that file to read this one;
    - ``import lgkit.a.b`` is an edge to ``lgkit.a.b`` alone: the initialisation of its
      parent packages that Python runs first is not an edge;
    - ``from P import n`` is an edge to the submodule ``P.n`` when there is one; else, when
      ``P`` is a package whose ``__init__`` takes ``n`` from another module (``_reexports``),
      to that module; else to ``P`` itself.

    So a package ``__init__`` that only re-exports its submodules lies on no cycle: nobody's
    edge ends at it unless they import the package as a whole (``from lgkit import engine``)
    or a name the ``__init__`` defines itself, and a submodule doing that to its own package
    closes a cycle and fails.
    """
    index = _module_index()
    exports = _reexports(index)
    graph: dict[str, dict[str, int]] = {m: {} for m in index}
    for src, path in index.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = _from_module(node, path)
                targets = [_resolve(mod, a.name, index, exports) for a in node.names]
            for dst in targets:
                if dst in index and dst != src:
                    graph[src].setdefault(dst, node.lineno)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in order:
            continue
        work = [(root, iter(sorted(graph[root])))]
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in order:
                    order[nxt] = low[nxt] = len(order)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], order[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == order[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    """One cycle's modules and the imports that tie them, ``file:line -> module``."""
    index = _module_index()
    lines = [" <-> ".join(component)]
    for src in component:
        rel = index[src].relative_to(LGKIT.parent).as_posix()
        lines += [
            f"    {rel}:{line} imports {dst}"
            for dst, line in sorted(graph[src].items())
            if dst in component
        ]
    return "\n".join(lines)


def test_no_import_cycle():
    """Every module's lgkit imports run one way (rule: ``_import_graph``)."""
    graph = _import_graph()
    cycles = [_describe(c, graph) for c in _cycles(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_finder_sees_cycles(tmp_path, monkeypatch):
    pkg = tmp_path / "lgkit" / "p"
    pkg.mkdir(parents=True)
    (tmp_path / "lgkit" / "__init__.py").write_text("")
    # a re-exporting __init__ is on no cycle; a, b, c import each other in a ring (c lazily,
    # through the package's re-export of a's name); d imports the package as a whole
    (pkg / "__init__.py").write_text("from lgkit.p.a import f\nfrom .d import g\n")
    (pkg / "a.py").write_text("from lgkit.p import b\n\ndef f():\n    pass\n")
    (pkg / "b.py").write_text("import lgkit.p.c\n")
    (pkg / "c.py").write_text("def h():\n    from lgkit.p import f\n")
    (pkg / "d.py").write_text("from lgkit import p\n\ndef g():\n    pass\n")
    (pkg / "e.py").write_text("from lgkit.p import f, g\n")
    monkeypatch.setattr(f"{__name__}.LGKIT", tmp_path / "lgkit")
    graph = _import_graph()
    assert graph["lgkit.p.e"] == {"lgkit.p.a": 1, "lgkit.p.d": 1}
    assert _cycles(graph) == [["lgkit.p", "lgkit.p.d"], ["lgkit.p.a", "lgkit.p.b", "lgkit.p.c"]]
    assert _describe(["lgkit.p", "lgkit.p.d"], graph).splitlines() == [
        "lgkit.p <-> lgkit.p.d",
        "    lgkit/p/__init__.py:2 imports lgkit.p.d",
        "    lgkit/p/d.py:1 imports lgkit.p",
    ]
