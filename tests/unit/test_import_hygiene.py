"""The core never imports the front-end libraries."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

FRONT_END_DIRS = ("cli", "console", "tui")
# Makes the front-end libraries unimportable, as if not installed. (scikit-learn imports rich
# optionally when it is present, so "not in sys.modules" alone would test sklearn, not us.)
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('textual', 'rich', 'typer'):
            raise ImportError('blocked front-end library: ' + name)
sys.meta_path.insert(0, Block())
"""

CORE_MODULES = [
    "optlab.preset.loader",
    "optlab.preset.schema",
    "optlab.data.datasets",
    "optlab.models.registry",
    "optlab.training.trainer",
    "optlab.training.runner",
    "optlab.metrics",
    "optlab.runs.store",
    "optlab.runs.results",
    "optlab.runs.control",
    "optlab.experiment",
]
FRONT_END = ("textual", "rich", "typer")


def _loaded_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return {line.split(".")[0] for line in out.splitlines()}


def test_core_imports_and_works_without_front_end_libraries() -> None:
    code = BLOCKER + "\n".join(f"import {m}" for m in CORE_MODULES)
    code += "\nimport numpy as np; optlab.metrics.classification_metrics(np.array([0, 1]), np.array([0.2, 0.9]), 2)"
    loaded = _loaded_after(code)
    assert "torch" in loaded  # the check itself works: the core does import torch
    assert not loaded & set(FRONT_END)


def test_no_core_file_imports_a_front_end_library() -> None:
    root = Path(__file__).parents[2] / "optlab"
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] in FRONT_END_DIRS or rel.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{rel}: {n}" for n in names if n.split(".")[0] in FRONT_END]
    assert not offenders


def test_preset_loading_does_not_import_torch_until_checks() -> None:
    loaded = _loaded_after("import optlab.preset.schema, optlab.preset.loader, optlab.data.catalog")
    assert "torch" not in loaded


def test_the_control_file_and_its_control_do_not_import_torch() -> None:
    """The TUI writes control.json with the run store's functions and must stay torch-free."""
    assert "torch" not in _loaded_after("import optlab.runs.control, optlab.training.control")


def test_registry_names_and_schema_validation_do_not_import_torch() -> None:
    code = (
        "from optlab import registry\n"
        "from optlab.preset.schema import Preset\n"
        "assert 'adam' in registry.names('optimizer') and 'mlp' in registry.names('model')\n"
        "Preset.model_validate({'runs': [{'name': 'a', 'optimizer': {'name': 'adam', 'lr': 0.001}}]})"
    )
    assert "torch" not in _loaded_after(code)


def test_the_import_layers_hold() -> None:
    """pyproject.toml's import-linter contracts: each layer imports only those below it, also
    inside functions, and only the front ends import typer, rich or textual."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


# The command through typer's app, not `run()`: that one ends the process without returning
# once torch is loaded (cli/common.py: leave), and the modules are read after it.
CLI_VALIDATE = (
    "import sys\nsys.argv = ['optlab', 'presets', 'validate', 'quickstart']\nfrom optlab.cli.main import app\n"
    "try:\n    app(prog_name='optlab')\nexcept SystemExit:\n    pass\n"
)


def test_presets_validate_imports_torch_only_to_check_what_it_has_not_checked_before(tmp_path: Path) -> None:
    """The torch-backed checks of a run that passed them are kept (optlab.preset.check_cache):
    validating the preset again answers without importing torch."""
    env = {**os.environ, "OPTLAB_CHECK_CACHE": str(tmp_path / "checks")}
    assert "torch" in _loaded_after(CLI_VALIDATE, env)  # the first time, the checks need torch
    assert "torch" not in _loaded_after(CLI_VALIDATE, env)


def test_training_digits_and_its_test_metrics_import_neither_sklearn_nor_scipy() -> None:
    """digits' file, the seeded stratified split and the test metrics (ROC-AUC included) are
    computed with numpy as scikit-learn computes them: a compare pays no scikit-learn import."""
    code = (
        "import numpy as np\nfrom optlab.data.datasets import load_dataset\nfrom optlab.spec import DataConfig\n"
        "from optlab.metrics import classification_metrics, regression_metrics\n"
        "data = load_dataset(DataConfig(dataset='digits', val_fraction=0.2))\n"
        "p = np.full((len(data.y_test), 10), 0.1)\n"
        "classification_metrics(data.y_test.numpy(), p, 10)\n"
        "regression_metrics(np.arange(5.0), np.arange(5.0) + 1)"
    )
    loaded = _loaded_after(code)
    assert "torch" in loaded and "numpy" in loaded
    assert not loaded & {"sklearn", "scipy"}
