"""The code's rooms: pure features/models, a core that never imports what imports it,
no truth leaking into the pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IO_PACKAGES = {"prefect", "pymongo", "bson", "pymongoarrow", "mlflow", "great_expectations",
               "secantus", "tasks", "flows"}
PIPELINE_PACKAGES = ("bbx", "flows", "tasks", "features", "models")
# What each layer may not import (first-party only; third-party rules are the purity test's).
FORBIDDEN = {
    "bbx": {"tasks", "flows", "simulator", "bbxcli", "bench"},
    "tasks": {"flows", "bbxcli", "simulator", "bench"},
    "flows": {"bbxcli", "simulator", "bench"},
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_roots(path: Path) -> set[str]:
    """Every top-level package the module imports, at module level or inside a function."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", ["features", "models"])
def test_features_and_models_are_pure(package: str) -> None:
    modules = _modules(package)
    assert modules, f"{package}/ has no modules"
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & IO_PACKAGES)
        for path in modules
        if _imported_roots(path) & IO_PACKAGES
    }
    assert offenders == {}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_only_import_downwards(package: str) -> None:
    modules = _modules(package)
    assert modules, f"{package}/ has no modules"
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & FORBIDDEN[package])
        for path in modules
        if _imported_roots(path) & FORBIDDEN[package]
    }
    assert offenders == {}


def test_nothing_in_the_pipeline_imports_the_shell() -> None:
    importers = [
        str(path.relative_to(ROOT))
        for package in (*PIPELINE_PACKAGES, "simulator")
        for path in _modules(package)
        if "bbxcli" in _imported_roots(path)
    ]
    assert importers == []


def test_the_rule_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def run():\n    from flows.nightly import nightly\n    import tasks.x\n")
    assert {"flows", "tasks"} <= _imported_roots(module)


def test_pipeline_code_never_reads_the_simulators_truth() -> None:
    readers = [
        str(path.relative_to(ROOT))
        for package in PIPELINE_PACKAGES
        for path in _modules(package)
        if "sim_truth" in path.read_text() or "simulator" in _imported_roots(path)
    ]
    assert readers == []


def test_the_lake_module_does_file_io_only() -> None:
    """bbx.lake reads and writes the lake's files; Mongo, GX and Prefect stay in tasks."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & IO_PACKAGES)
        for path in sorted((ROOT / "bbx" / "lake").rglob("*.py"))
        if _imported_roots(path) & IO_PACKAGES
    }
    assert offenders == {}
