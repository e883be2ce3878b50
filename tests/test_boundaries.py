"""Import boundaries between lgkit's subpackages, read from the source (AST, no imports run).

Each subpackage's ``__init__`` states what it may import; this test holds them to it,
for module-level and function-level (lazy) imports alike.
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
EXCEPTIONS = {
    # exporting statistics reads them with the engine's reader, lazily (the engine imports formats)
    ("formats/authors.py", "lgkit.engine.store"),
}


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
