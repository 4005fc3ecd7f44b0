"""benchmarks/ as a maintainer reads it: modules run with ``python -m``, shared code in ``common``, no reach into tests.

Read from the source with ``ast`` (nothing imported), except the entry points, which are run with ``--help``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
# Every command benchmarks/README.md gives, by module.
ENTRY_POINTS = ("benchmarks.cpu.doc_qa", "benchmarks.cpu.ingress_overhead", "benchmarks.cpu.rope_base",
                "benchmarks.gpu.validate",
                "benchmarks.gpu.tp4_1m")


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(REPO).with_suffix("").parts): p for p in sorted(BENCHMARKS.rglob("*.py"))}


def imported(path: Path) -> set[str]:
    """Absolute module names a file imports, anywhere in it (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module)
    return names


def half(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 2 else ""


def test_nothing_is_imported_from_tests():
    found = {m: sorted(i for i in imported(p) if i == "tests" or i.startswith("tests."))
             for m, p in modules().items()}
    assert {m: i for m, i in found.items() if i} == {}


def test_the_cpu_and_gpu_halves_share_only_common():
    crossing = {}
    for module, path in modules().items():
        for target in imported(path):
            if target.startswith("benchmarks.") and {half(module), half(target)} == {"cpu", "gpu"}:
                crossing.setdefault(module, []).append(target)
    assert crossing == {}
    common = {m: sorted(t for t in imported(p) if half(t) in ("cpu", "gpu"))
              for m, p in modules().items() if half(m) == "common"}
    assert {m: t for m, t in common.items() if t} == {}, "common imports a half"


def test_no_module_edits_sys_path():
    edits = [m for m, p in modules().items() if "sys.path" in p.read_text()]
    assert edits == []


def test_no_private_name_of_ours_is_imported():
    private = {}
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (
                    "benchmarks", "cluster", "deployments"):
                names = [a.name for a in node.names if a.name.startswith("_")]
                if names:
                    private.setdefault(module, []).extend(names)
    assert private == {}


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_entry_point_runs_as_a_module(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {module} ")
