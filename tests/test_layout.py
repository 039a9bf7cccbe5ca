"""The package layout: one package (or module) per stage of the data's way, imports only downward.

Read from the source with :mod:`ast`, so function-level imports count as much as module-level
ones (only ``if TYPE_CHECKING:`` blocks are left out: they never run). ``docs/design.md``'s
package table is generated from :data:`featx.STAGES` and the packages' docstrings and must match.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import featx
from featx import STAGES

ROOT = Path(featx.__file__).parent
DESIGN = ROOT.parent / "docs" / "design.md"
MAX_LOOSE_MODULES = 15


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for every featx import in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, None, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append((sub, None, child.lineno) if sub in MODULES
                                 else (base, alias.name, child.lineno))
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return [(m, n, line) for m, n, line in found if m == "featx" or m.startswith("featx.")]


EDGES = {m: _imports(m) for m in MODULES}


def _stage(module: str) -> str:
    """The stage a module belongs to: ``featx.<stage>`` or ``featx.<stage>.<...>``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "featx"


RANK = {name: i for i, (name, _) in enumerate(STAGES)}


def test_every_module_belongs_to_a_stage():
    unknown = sorted({_stage(m) for m in MODULES} - set(RANK) - {"featx"})
    assert not unknown, f"add these to featx.STAGES (in the data's order): {unknown}"


def test_imports_only_go_down_the_stages():
    upward = [f"{m}:{line} imports {target} ({_stage(m)} -> {_stage(target)})"
              for m, edges in EDGES.items() if m != "featx"
              for target, _, line in edges
              if RANK.get(_stage(target), len(RANK)) > RANK[_stage(m)]]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    """No cycle among modules, function-level imports included (Tarjan's SCC)."""
    graph = {m: sorted({t for t, _, _ in edges if t in MODULES and t != "featx"})
             for m, edges in EDGES.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    assert not cycles, f"import cycles: {cycles}"


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def test_no_private_name_crosses_a_stage():
    crossing = [f"{m}:{line} imports {target}{'.' + name if name else ''}"
                for m, edges in EDGES.items() if m != "featx"
                for target, name, line in edges
                if _stage(target) != _stage(m)
                and (_private(target) or (name is not None and _private(name)))]
    assert not crossing, "\n".join(crossing)


def test_few_loose_modules():
    loose = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(loose) <= MAX_LOOSE_MODULES, loose


def test_public_exports_resolve():
    for name in featx.__all__:
        assert getattr(featx, name) is not None, name


def test_no_module_shadows_a_public_name():
    """Importing a submodule binds its name on the package: a module named like an export (the
    function ``featx.compare`` once lived in ``featx/compare.py``) would replace the export as
    soon as anything imported the module."""
    shadowing = sorted(set(featx.__all__) & {m.split(".")[1] for m in MODULES if "." in m})
    assert not shadowing, f"modules named like public names of featx: {shadowing}"


def test_stages_table_names_existing_packages():
    for name, _ in STAGES:
        assert (ROOT / name).is_dir() or (ROOT / f"{name}.py").is_file(), name


def test_design_doc_package_table_is_current():
    text = DESIGN.read_text()
    table = re.search(r"<!-- stages:begin -->\n(.*?)<!-- stages:end -->", text, re.S)
    assert table, "docs/design.md lost its generated stage table markers"
    assert table.group(1) == featx.stages_markdown(), (
        "docs/design.md is stale: regenerate the table with "
        "`python -c 'import featx; print(featx.stages_markdown(), end=\"\")'`")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_has_a_docstring(module):
    tree = ast.parse(MODULES[module].read_text())
    assert ast.get_docstring(tree), f"{module} has no module docstring"


#: Test modules about featx as a whole rather than one stage (its layout, its docs, its
#: packaging, what it wrote before, the Keras backends, contracts several stages share).
CROSS_CUTTING = {"test_layout", "test_docstrings", "test_docs_examples", "test_readme",
                 "test_constraints", "test_legacy", "test_backends", "test_contracts"}


def test_tests_mirror_the_stages():
    """A stage's tests are found by its name: ``tests/test_<stage>.py`` or
    ``tests/test_<stage>_<aspect>.py`` (a module stage: ``test_estimators_*``), every stage has
    at least one, and only the cross-cutting modules are named otherwise."""
    tests = sorted(p.stem for p in (ROOT.parent / "tests").glob("test_*.py"))
    stages = [name for name, _ in STAGES]
    stray = [t for t in tests if t not in CROSS_CUTTING
             and not any(t == f"test_{s}" or t.startswith(f"test_{s}_") for s in stages)]
    assert not stray, f"name these after the stage they test (test_<stage>_<aspect>.py): {stray}"
    untested = [s for s in stages
                if not any(t == f"test_{s}" or t.startswith(f"test_{s}_") for t in tests)]
    assert not untested, f"stages without a test module of their own: {untested}"


def test_a_stage_is_reachable_from_the_package():
    """``import featx`` then ``featx.<stage>`` gives the stage module (``featx.advise.advise``,
    as docs/quality.md writes it), imported on first use; an unknown name stays an error."""
    script = ("import featx; assert featx.advise.advise.__module__ == 'featx.advise'; "
              "assert featx.trust.store.write_artifact; print(hasattr(featx, 'nope'))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=ROOT.parent)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]
