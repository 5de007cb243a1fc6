"""Plugins: from a file and from an installed package's entry point, never from a preset;
their provenance in results.json, and resume refusing a plugin whose code changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from optlab import registry
from optlab.errors import PresetError
from optlab.preset.loader import load_preset_text

EXAMPLE = Path(__file__).parents[2] / "examples" / "optlab-example-plugin"
EXAMPLE_MODULE = EXAMPLE / "src" / "optlab_example_plugin" / "__init__.py"

PLUGIN = '''
import torch

class HalfSGD(torch.optim.SGD):
    """SGD at half the given rate: enough to tell it from SGD in a result."""

    def __init__(self, params, lr=0.01, momentum=0.0):
        super().__init__(params, lr=lr / 2, momentum=momentum)


def register(registry):
    registry.optimizer("halfsgd", HalfSGD)
'''

PRESET = """
name = "plugged"
[data]
dataset = "digits"
train_limit = 240
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 2
batch_size = 32
[[runs]]
name = "half"
optimizer = { name = "halfsgd", lr = 0.1, momentum = 0.9 }
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }
"""


def optlab(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "optlab", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=240)


@pytest.fixture
def plugged(tmp_path: Path) -> Path:
    (tmp_path / "halfsgd.py").write_text(PLUGIN)
    (tmp_path / "plugged.toml").write_text(PRESET)
    return tmp_path


def test_a_file_plugin_trains_and_its_provenance_is_recorded(plugged: Path) -> None:
    result = optlab("compare", "plugged.toml", "--plugin", "halfsgd.py", "--out", "run", "--quiet",
                    "--format", "json", cwd=plugged)
    assert result.returncode == 0, result.stderr
    runs = {r["name"]: r for r in json.loads(result.stdout)["runs"]}
    assert runs["half"]["status"] == "finished"
    source = runs["half"]["provenance"]["optimizer"]
    assert source["origin"] == "file" and source["path"] == str(plugged / "halfsgd.py")
    import hashlib

    assert source["sha256"] == hashlib.sha256((plugged / "halfsgd.py").read_bytes()).hexdigest()
    assert runs["half"]["provenance"]["model"] == {"origin": "builtin"}
    assert len(runs["half"]["plugin_fingerprint"]) == 16
    assert runs["sgd"]["provenance"]["optimizer"] == {"origin": "builtin"} and runs["sgd"]["plugin_fingerprint"] == ""
    # The same initial weights: a plugin optimizer is compared fairly like any other.
    assert runs["half"]["init_fingerprint"] == runs["sgd"]["init_fingerprint"]


def test_without_the_plugin_the_name_is_unknown_and_says_how_to_get_it(plugged: Path) -> None:
    result = optlab("compare", "plugged.toml", "--quiet", cwd=plugged)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "unknown optimizer 'halfsgd'" in lines[0] and "--plugin" in lines[0]
    assert not (plugged / "runs").exists()


def test_a_bad_plugin_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "noregister.py").write_text("x = 1\n")
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(0)\n")  # once: exit 0, nothing said
    (tmp_path / "quits_late.py").write_text("def register(registry):\n    raise SystemExit\n")
    for file, words in (("broken.py", "cannot be imported (RuntimeError: boom)"),
                        ("noregister.py", "has no function register(registry)"),
                        ("quits.py", "--plugin quits.py: called sys.exit(0) while it was imported"),
                        ("quits_late.py", "--plugin quits_late.py: called sys.exit() in register()"),
                        ("missing.py", "--plugin missing.py: no such file")):
        result = optlab("compare", "quickstart", "--plugin", file, cwd=tmp_path)
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, file
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists(), file


EXITING = """
import sys

def loader():
    sys.exit(0)

def model(input_shape, n_outputs):
    sys.exit("bye")

def optimizer(params, lr=0.1):
    sys.exit(3)

def scheduler(optimizer, **kwargs):
    sys.exit(0)

def register(registry):
    registry.dataset("quitting-data", loader)
    registry.model("quitting-model", model)
    registry.optimizer("quitting-opt", optimizer)
    registry.scheduler("quitting-sched", scheduler)
"""


def test_a_plugin_exiting_from_its_loader_or_model_is_one_line_naming_it(
    fresh_registry: registry.Registry, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from optlab.cli.main import app

    (tmp_path / "quitting.py").write_text(EXITING)
    (tmp_path / "data.toml").write_text('[data]\ndataset = "quitting-data"\n[[runs]]\nname = "a"\n')
    digits = '[data]\ndataset = "digits"\n[[runs]]\nname = "a"\n'
    (tmp_path / "model.toml").write_text(digits + '[runs.model]\nname = "quitting-model"\n')
    (tmp_path / "opt.toml").write_text(digits + '[runs.optimizer]\nname = "quitting-opt"\n')
    (tmp_path / "sched.toml").write_text(digits + '[runs.scheduler]\nname = "quitting-sched"\n')
    plugin = str(tmp_path / "quitting.py")
    for preset, words in (("data.toml", "called sys.exit(0) in its loader"),
                          ("opt.toml", "optimizer 'quitting-opt' (" + plugin),
                          ("sched.toml", "scheduler 'quitting-sched' (" + plugin),
                          ("model.toml", "model 'quitting-model' (" + plugin)):
        out = tmp_path / f"run-{preset}"
        result = CliRunner().invoke(app, ["compare", str(tmp_path / preset), "--plugin", plugin, "--out", str(out)])
        assert result.exit_code == 2, (preset, result.output)
        assert words in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
        assert "Traceback" not in result.output and not out.exists()
    assert "called sys.exit('bye') when built" in result.stderr


def test_a_plugin_exiting_mid_training_fails_its_run_only(fresh_registry: registry.Registry, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from optlab.cli.main import app

    (tmp_path / "late.py").write_text(
        "import sys, torch\n"
        "class Late(torch.optim.SGD):\n"
        "    def step(self, closure=None):\n"
        "        if self.param_groups[0]['params'][0].numel() >= 1000:  # the run's model, not validation's\n"
        "            sys.exit(0)\n"
        "        return super().step(closure)\n"
        "def register(registry):\n"
        "    registry.optimizer('late', Late)\n"
    )
    (tmp_path / "p.toml").write_text(PRESET.replace('name = "halfsgd", lr = 0.1, momentum = 0.9', 'name = "late"'))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "p.toml"), "--plugin", str(tmp_path / "late.py"),
                                      "--out", str(tmp_path / "run"), "--quiet", "--format", "json"])
    assert result.exception is None, result.output  # exits as when any run fails
    runs = {r["name"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())["runs"]}
    assert runs["half"]["status"] == "failed" and "SystemExit" in runs["half"]["reason"]
    assert runs["sgd"]["status"] == "finished"


def test_plugin_keyword_arguments_are_checked_against_its_signature(
    fresh_registry: registry.Registry, tmp_path: Path
) -> None:
    fresh_registry.load_plugin(str(EXAMPLE_MODULE))
    text = PRESET.replace('name = "halfsgd", lr = 0.1, momentum = 0.9', 'name = "signsgd", lr = 0.1, mometum = 0.9')
    with pytest.raises(PresetError, match=r"unknown argument 'mometum' for optimizer 'signsgd' \(did you mean 'momentum'\?\)"):
        load_preset_text(text, "p.toml")
    # The plugin's own checks run in the trial step, on a matrix and a vector, before training.
    (tmp_path / "picky.py").write_text(
        "import torch\n"
        "SHAPES = []\n"
        "class Picky(torch.optim.SGD):\n"
        "    def __init__(self, params, lr=0.1, beta=0.5):\n"
        "        if beta > 1: raise ValueError(f'beta must be <= 1, got {beta}')\n"
        "        super().__init__(params, lr=lr)\n"
        "    def step(self, closure=None):\n"
        "        SHAPES.append(sorted(p.dim() for g in self.param_groups for p in g['params']))\n"
        "        return super().step(closure)\n"
        "def register(registry):\n    registry.optimizer('picky', Picky)\n"
    )
    fresh_registry.load_plugin(str(tmp_path / "picky.py"))
    bad = PRESET.replace('name = "halfsgd", lr = 0.1, momentum = 0.9', 'name = "picky", lr = 0.1, beta = 1.5')
    with pytest.raises(PresetError, match="invalid arguments for optimizer 'picky': beta must be <= 1, got 1.5"):
        load_preset_text(bad, "p.toml")
    load_preset_text(bad.replace("beta = 1.5", "beta = 0.9"), "p.toml")
    picky = sys.modules[fresh_registry.get("optimizer", "picky").factory().__module__]
    # The trial model has 2-D weights and 1-D biases (two layers, so a matrix-only optimizer
    # finds a hidden matrix): one step saw both kinds.
    assert any({1, 2} <= set(shapes) for shapes in picky.SHAPES)


@pytest.mark.parametrize("name", ["torch.optim:SGD", "./halfsgd.py", "halfsgd.py", "pkg/mod"])
def test_a_preset_field_that_looks_like_code_is_refused(name: str, fresh_registry: registry.Registry) -> None:
    with pytest.raises(PresetError, match="looks like code; a preset names every optimizer by its registered name only"):
        load_preset_text(PRESET.replace('"halfsgd"', f'"{name}"'), "p.toml")
    assert fresh_registry.plugins == []


def _fake_distribution(site: Path) -> None:
    """An installed optlab-example-plugin as pip leaves it: the package and a dist-info
    folder whose entry_points.txt names the plugin."""
    shutil.copytree(EXAMPLE / "src" / "optlab_example_plugin", site / "optlab_example_plugin")
    info = site / "optlab_example_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: optlab-example-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[optlab.plugins]\nexample = optlab_example_plugin:register\n")
    (info / "top_level.txt").write_text("optlab_example_plugin\n")


def test_an_installed_plugin_is_found_by_its_entry_point(tmp_path: Path) -> None:
    _fake_distribution(tmp_path / "site")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    listed = optlab("plugins", "--format", "json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert {"name": "example", "value": "optlab_example_plugin:register"} in doc["entry_points"]
    signsgd = next(o for o in doc["optimizers"] if o["name"] == "signsgd")
    assert signsgd["source"] == {"origin": "package", "name": "optlab-example-plugin", "version": "0.1.0"}
    assert any(m["name"] == "resmlp" for m in doc["models"])

    (tmp_path / "p.toml").write_text(PRESET.replace("halfsgd", "signsgd"))
    ok = optlab("presets", "validate", "p.toml", cwd=tmp_path, env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: p.toml"), ok.stderr
    off = optlab("presets", "validate", "p.toml", cwd=tmp_path, env={**env, registry.AUTOLOAD_ENV: "1"})
    assert off.returncode == 2 and "unknown optimizer 'signsgd'" in off.stderr


def test_resume_refuses_a_plugin_whose_code_changed(plugged: Path) -> None:
    first = optlab("compare", "plugged.toml", "--plugin", "halfsgd.py", "--out", "run", "--quiet", cwd=plugged)
    assert first.returncode == 0, first.stderr
    # Make the experiment look interrupted after its last checkpoint: drop the end records.
    events = plugged / "run" / "events.jsonl"
    kept = [line for line in events.read_text().splitlines()
            if json.loads(line)["type"] not in ("run_ended", "experiment_ended")]
    events.write_text("\n".join(kept) + "\n")
    (plugged / "run" / "results.json").unlink()
    (plugged / "halfsgd.py").write_text(PLUGIN + "\n# edited\n")

    forgotten = optlab("resume", "run", "--quiet", cwd=plugged)
    assert forgotten.returncode == 2 and "unknown optimizer 'halfsgd'" in forgotten.stderr
    assert f"trained with plugins: pass them again (--plugin {plugged / 'halfsgd.py'})" in forgotten.stderr
    refused = optlab("resume", "run", "--plugin", "halfsgd.py", "--quiet", cwd=plugged)
    assert refused.returncode == 2, refused.stderr
    assert "half: the code of its optimizer changed since the checkpoint" in refused.stderr
    assert "Use --force" in refused.stderr
    forced = optlab("resume", "run", "--plugin", "halfsgd.py", "--quiet", "--force", cwd=plugged)
    assert forced.returncode == 0, forced.stderr


def test_shell_completion_names_presets_and_registered_names_without_torch(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from optlab.cli.main import run\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    cases = {
        "optlab compare quick": "quickstart",
        "optlab compare quickstart --set train.optimizer.name=ada": "train.optimizer.name=adam",
        "optlab compare quickstart --set model.name=": "model.name=lenet",
    }
    for words, expected in cases.items():
        env = {**os.environ, "_OPTLAB_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=60).stdout.split()
        assert expected in out, (words, out)
        assert out[-1] == "NO-TORCH", words


def test_the_example_package_preset_trains_with_its_module_as_a_file_plugin(tmp_path: Path) -> None:
    result = optlab("compare", str(EXAMPLE / "signsgd-vs-adam.toml"), "--plugin", str(EXAMPLE_MODULE),
                    "--set", "train.epochs=2", "--out", "run", "--quiet", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dataset"]["name"] == "two-moons" and doc["dataset"]["task"] == "binary"
    runs = {r["name"]: r for r in doc["runs"]}
    assert {r["status"] for r in runs.values()} == {"finished"}
    assert runs["signsgd"]["provenance"]["optimizer"]["origin"] == "file"
    assert runs["adam"]["provenance"]["optimizer"] == {"origin": "builtin"}
    assert runs["adam"]["provenance"]["model"]["origin"] == "file"  # resmlp, for both runs
    assert runs["signsgd"]["init_fingerprint"] == runs["adam"]["init_fingerprint"]
    # Two moons is not linearly separable; the residual MLP learns it well past chance.
    assert runs["adam"]["test"]["accuracy"] > 0.8
