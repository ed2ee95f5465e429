"""The package's layering, checked: import-linter's contracts hold (and fail on a broken copy), no import
circle among the package's modules, no module over 400 lines."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grimp

from tests.conftest import ROOT, require_tool

PACKAGES = ("mlops", "pipelines", "serving", "components")
MAX_LINES = 400


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    tool = require_tool("lint-imports", "the import-linter package of the dev extra")
    return subprocess.run([tool, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(cwd), "PATH": ""})


def test_the_import_contracts_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout and "Contracts: 4 kept, 0 broken." in done.stdout, done.stdout


def test_the_import_contracts_fail_on_a_broken_copy(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "components" / "dataio.py", "a") as fh:  # a step's shared module reaching up
        fh.write("\nfrom mlops import local  # noqa\n")
    with open(tmp_path / "serving" / "config.py", "a") as fh:  # the server importing kfp
        fh.write("\nimport kfp  # noqa\n")
    with open(tmp_path / "components" / "gate" / "logic.py", "a") as fh:  # a step importing another step
        fh.write("\nfrom components.train import logic as _train  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    broken = done.stdout[done.stdout.index("Broken contracts"):]
    for contract in ("mlops on top", "components import neither", "serving imports neither", "no step imports"):
        assert contract in broken, done.stdout
    for line in ("components.dataio -> mlops.local", "serving.config -> kfp",
                 "components.gate.logic -> components.train.logic"):
        assert line in broken, done.stdout


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan's algorithm over grimp's graph)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle_among_the_modules():
    graph = grimp.build_graph(*PACKAGES)
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_circle(tmp_path, monkeypatch):
    (tmp_path / "circle").mkdir()
    (tmp_path / "circle" / "__init__.py").write_text("")
    (tmp_path / "circle" / "a.py").write_text("def f():\n    from circle import b\n")  # in a function: counts too
    (tmp_path / "circle" / "b.py").write_text("from circle import c\n")
    (tmp_path / "circle" / "c.py").write_text("import circle.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles(grimp.build_graph("circle", cache_dir=None)) == [["circle.a", "circle.b", "circle.c"]]


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
