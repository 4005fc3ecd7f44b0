"""The repository's shape: no import circle, small modules, one copy of every file.

Read from the source with ``ast`` (nothing is imported), over the files git
tracks, so a new module is checked the day it lands.
"""

from __future__ import annotations

import ast
import hashlib
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cluster", "deployments", "benchmarks")
MAX_MODULE_LINES = 400


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / name for name in listed.decode().split("\0") if name and (REPO / name).is_file()]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {
        module_name(p): p for p in tracked_files()
        if p.suffix == ".py" and p.relative_to(REPO).parts[0] in PACKAGES
    }


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """Project modules ``module`` imports, anywhere in the file (functions included).

    Importing ``a.b.c`` from outside package ``a.b`` also runs ``a/__init__``
    and ``a/b/__init__``, so those count as imports too: a package whose
    ``__init__`` imports its own submodules would otherwise hide a circle.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            inside = module == prefix or module.startswith(prefix + ".")
            if prefix in known and prefix != module and (i == len(parts) or not inside):
                found.add(prefix)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    known = set(modules)
    return {name: imports_of(path, name, known) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_project_imports():
    graph = import_graph()
    assert "cluster.config" in graph["deployments.routing.bands"]
    assert "deployments.dispatch.request_path" in graph["deployments.documents.api"]
    # Inside a package, its own __init__ is not an import of its submodules.
    assert "cluster.config" not in graph["cluster.config.pool"]


def test_cycle_finder_finds_a_circle_through_a_package_init():
    graph = {"a": {"a.x"}, "a.x": {"b.y"}, "b.y": {"a"}, "c": set()}
    assert cycles(graph) == [["a", "a.x", "b.y"]]


def test_no_import_circle_among_the_packages():
    assert cycles(import_graph()) == []


def test_no_module_over_the_size_limit():
    long = {
        str(p.relative_to(REPO)): n for p in tracked_files()
        if p.suffix == ".py" and (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these modules (over {MAX_MODULE_LINES} lines)"


def test_no_two_tracked_files_are_identical():
    """Generated files have one home (helm/monitoring/, helm/values.schema.json)."""
    by_digest: dict[str, list[str]] = defaultdict(list)
    for path in tracked_files():
        data = path.read_bytes()
        if data.strip():  # empty markers (__init__.py, .gitkeep) may repeat
            by_digest[hashlib.sha256(data).hexdigest()].append(str(path.relative_to(REPO)))
    assert [names for names in by_digest.values() if len(names) > 1] == []


def test_make_help_lists_every_target():
    makefile = (REPO / "Makefile").read_text()
    phony = next(line for line in makefile.splitlines() if line.startswith(".PHONY:")).split(":", 1)[1].split()
    listed = subprocess.run(["make", "--no-print-directory", "-s", "help"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout
    helped = {line.split()[1] for line in listed.splitlines() if line.startswith("make ")}
    assert set(phony) - {"help"} <= helped


def test_no_merge_conflict_markers_are_committed():
    marker = "^(<<<<<<< |>>>>>>> |=======$)"
    found = subprocess.run(["git", "grep", "-nE", marker], cwd=REPO, capture_output=True, text=True).stdout
    assert found == "", f"unresolved merge conflict:\n{found}"


def folder_of(module: str) -> str:
    """The folder of ``deployments/`` or ``cluster/`` a module lives in (one level down)."""
    return ".".join(module.split(".")[:2])


def test_no_two_folders_import_each_other():
    """Layers run one way (app -> ingress -> documents -> dispatch -> routing and the leaves):
    a folder that imports another is never imported back by it, directly or through a third."""
    folders: dict[str, set[str]] = defaultdict(set)
    for module, targets in import_graph().items():
        for target in targets:
            if "." in module and "." in target and folder_of(target) != folder_of(module):
                folders[folder_of(module)].add(folder_of(target))
    assert cycles(dict(folders)) == [], "these folders import each other"


def indexed_names(init: Path) -> set[str] | None:
    """Names a package docstring's index lists (``  name.py`` or ``  name/`` at a line start), or None."""
    doc = ast.get_docstring(ast.parse(init.read_text()), clean=False) or ""
    return set(re.findall(r"^\s{2,}(\w+\.py|\w+/)\s", doc + "\n", flags=re.MULTILINE)) or None


@pytest.mark.parametrize("init", sorted(
    p.relative_to(REPO).as_posix() for p in tracked_files()
    if p.name == "__init__.py" and p.relative_to(REPO).parts[0] in PACKAGES
))
def test_package_index_lists_its_modules(init):
    path = REPO / init
    listed = indexed_names(path)
    if listed is None:
        pytest.skip(f"{init} has no module index")
    present = {p.name for p in path.parent.glob("*.py") if p.name != "__init__.py"} | {
        f"{p.name}/" for p in path.parent.iterdir() if (p / "__init__.py").is_file()
    }
    assert listed == present, f"{init}: lists {sorted(listed - present)} that are gone, misses {sorted(present - listed)}"
