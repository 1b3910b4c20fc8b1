"""The layers as the README draws them: who may import whom, and no TensorFlow where no
network runs."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("db", "llm_model", "service", "flows", "cli")
# What each package must never import (prefect and the packages above it).
FORBIDDEN = {
    "db": {"prefect", "llm_model", "service", "flows", "cli"},
    "llm_model": {"prefect", "db", "service", "flows", "cli"},
    "service": {"prefect", "flows", "cli"},
    "flows": {"cli"},
    "cli": set(),
}


def imported_packages(path: Path) -> set[str]:
    """The top-level names a module imports, wherever in it (function bodies too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_nothing_above_it(package):
    offences = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {module: names for module, names in offences.items() if names} == {}


def test_the_layer_rule_catches_an_import_of_prefect(tmp_path):
    module = tmp_path / "late.py"
    module.write_text("def later():\n    from prefect import flow\n")
    assert "prefect" in imported_packages(module)


def modules_loaded_by(statement: str) -> list[str]:
    """The heavy libraries a fresh interpreter has loaded after `statement`."""
    heavy = "{'tensorflow', 'keras', 'prefect', 'sklearn', 'matplotlib'}"
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; {statement}; print(sorted({heavy} & set(sys.modules)))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return ast.literal_eval(loaded.stdout.strip())


def test_the_command_line_starts_without_prefect_sklearn_matplotlib_or_tensorflow():
    """init-db, import-events, evaluate and report run no flow: their start-up is the
    command's own, seconds shorter."""
    assert modules_loaded_by("import cli.main") == []


def test_the_command_line_and_the_score_flow_load_no_tensorflow():
    """A champion that is not a network is served without TensorFlow's seconds of start-up:
    the CLI, the score flow and what it scores with import none of it."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, cli.main, flows.score, service.partitions, llm_model.baselines; "
            "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
