"""Preset loading: resolution, overrides, and one clear message for every kind of bad input."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optlab.errors import PresetError
from optlab.preset.loader import (
    bundled_dir,
    load_preset,
    load_preset_text,
    preset_sources,
)
from optlab.preset.overrides import apply_overrides
from optlab.preset.schema import Preset

GOOD = """
name = "t"
[data]
dataset = "digits"
[model]
name = "mlp"
hidden = [32]
[train]
epochs = 2
batch_size = 32
optimizer = { name = "sgd", lr = 0.1, momentum = 0.9 }
[[runs]]
name = "a"
[[runs]]
name = "b"
optimizer = { name = "adam", lr = 1e-3 }
model = { dropout = 0.5 }
[[runs]]
name = "c"
optimizer = { lr = 0.5 }
"""

BUNDLED = sorted(p.stem for p in bundled_dir().glob("*.toml"))


def test_bundled_presets_are_all_there() -> None:
    assert {
        "quickstart", "tutorial-fashion-mnist", "mnist-simplenn", "optimizers", "schedulers", "batch-sizes",
        "regularization", "lenet-batchnorm", "regression-diabetes", "binary-breast-cancer", "amp-clipping",
    } <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_preset_validates_and_describes_itself(name: str) -> None:
    loaded = load_preset(name)
    assert loaded.preset.name == name
    assert len(loaded.preset.description) > 40
    assert loaded.resolved_runs()


def test_run_fields_resolve_over_train_defaults() -> None:
    runs = {r.name: r for r in load_preset_text(GOOD).resolved_runs()}
    assert runs["a"].optimizer.name == "sgd" and runs["a"].optimizer.kwargs == {"momentum": 0.9}
    # Another optimizer name replaces the default optimizer instead of inheriting momentum.
    assert runs["b"].optimizer.name == "adam" and runs["b"].optimizer.kwargs == {}
    # The same name (or none) merges: lr overridden, momentum kept.
    assert runs["c"].optimizer.lr == 0.5 and runs["c"].optimizer.kwargs == {"momentum": 0.9}
    assert runs["b"].model.dropout == 0.5 and runs["a"].model.dropout == 0.0
    assert runs["a"].model.hidden == [32] == runs["b"].model.hidden
    assert runs["a"].epochs == 2 and runs["a"].scheduler.name == "constant"


def test_set_overrides_defaults_and_single_runs() -> None:
    raw = apply_overrides(
        {"train": {"epochs": 5}, "runs": [{"name": "a"}]},
        ["train.epochs=2", "data.root=/data/x", "runs.a.optimizer.lr=0.3", "model.hidden=[8, 8]"],
    )
    assert raw["train"]["epochs"] == 2
    assert raw["data"]["root"] == "/data/x"
    assert raw["runs"][0]["optimizer"]["lr"] == 0.3
    assert raw["model"]["hidden"] == [8, 8]


def test_name_resolution_prefers_project_then_user_then_bundled(tmp_path: Path, monkeypatch) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "quickstart.toml").write_text(GOOD.replace('name = "t"', 'name = "quickstart"'))
    monkeypatch.setenv("OPTLAB_PRESETS", str(user))
    monkeypatch.chdir(tmp_path)
    assert load_preset("quickstart").path == user / "quickstart.toml"
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "quickstart.toml").write_text(GOOD)
    assert load_preset("quickstart").path == Path("presets") / "quickstart.toml"
    origins = [s.origin for s in preset_sources() if s.name == "quickstart"]
    assert origins == ["project", "user", "bundled"]


BAD_INPUTS = [
    # (change to GOOD, fragments the message must contain)
    ('epochs = 2', 'epochs = 0', ["train.epochs", "greater than or equal to 1", "0"]),
    ('epochs = 2', 'epochs = "ten"', ["train.epochs", "integer"]),
    ('epochs = 2', 'epoch = 2', ["unknown key 'epoch'", "did you mean 'epochs'"]),
    ('lr = 0.1,', 'lr = -0.1,', ["lr", "greater than 0"]),
    ('momentum = 0.9', 'momentum = 1.5', ["momentum must be in [0, 1)", "1.5"]),
    ('momentum = 0.9', 'mometum = 0.9', ["mometum", "did you mean 'momentum'", "allowed"]),
    ('batch_size = 32', 'batch_size = 0', ["batch_size", "greater than or equal to 1"]),
    ('batch_size = 32', 'batch_size = 100000', ["batch_size 100000", "training split"]),
    ('dataset = "digits"', 'dataset = "digitz"', ["unknown dataset 'digitz'", "digits", "mnist"]),
    ('dataset = "digits"', 'dataset = "digits"\nval_fraction = 1.0', ["val_fraction", "less than 1"]),
    ('name = "mlp"', 'name = "resnet"', ["unknown model 'resnet'", "mlp, lenet, cnn"]),
    ('hidden = [32]', 'hidden = [32]\ndropout = 1.0', ["dropout", "less than 1"]),
    ('name = "sgd"', 'name = "sgdd"', ["unknown optimizer 'sgdd'", "adam"]),
    ('name = "adam", lr = 1e-3', 'name = "adam", lr = 1e-3, betas = [0.9, 1.2]', ["betas"]),
    ('[[runs]]\nname = "c"', '[[runs]]\nname = "c"\nscheduler = { name = "cosin" }', ["unknown scheduler 'cosin'"]),
    ('[[runs]]\nname = "c"', '[[runs]]\nname = "c"\nloss = "hinge"', ["unknown loss 'hinge'", "cross_entropy"]),
    ('dataset = "digits"', 'dataset = "diabetes"', ["cross_entropy", "regression", "mse"]),
    ('name = "b"', 'name = "a"', ["duplicate run name 'a'"]),
    ('lr = 0.1,', 'lr = 0.1, import = "os",', ["unknown argument 'import'"]),
]


@pytest.mark.parametrize(("old", "new", "fragments"), BAD_INPUTS)
def test_bad_input_gives_one_clear_message(tmp_path: Path, old: str, new: str, fragments: list[str]) -> None:
    assert old in GOOD
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(PresetError) as info:
        load_preset(str(path))
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_malformed_toml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[train\nepochs = 2\n')
    with pytest.raises(PresetError, match=r"broken.toml: malformed TOML: .*line 2, column"):
        load_preset(str(path))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["train.epochs"], "expected key=value"),
        (["=3"], "expected key=value"),
        (["nope.x=1"], "unknown section 'nope'"),
        (["runs.zzz.lr=1"], "no run named 'zzz'"),
        (["train.epochz=1"], "did you mean 'epochs'"),
        # an invalid value given on the command line is reported as such, not as the file's
        (["train.epochs=0"], r"quickstart.toml \(with --set train.epochs=0\): train.epochs"),
        (["runs.adam.batch_size=0"], r"\(with --set runs.adam.batch_size=0\).*batch_size"),
    ],
)
def test_bad_set_overrides(overrides: list[str], fragment: str) -> None:
    with pytest.raises(PresetError, match=fragment):
        load_preset("quickstart", overrides)


def test_missing_preset_file_and_unknown_name() -> None:
    with pytest.raises(PresetError, match="no such preset file"):
        load_preset("does/not/exist.toml")
    with pytest.raises(PresetError, match="did you mean 'quickstart'"):
        load_preset("quickstrat")


def test_no_runs_is_an_error() -> None:
    """Missing or empty, the same message: the field and what it needs."""
    for text in ('name = "x"\nruns = []\n', 'name = "x"\n'):
        with pytest.raises(PresetError) as info:
            load_preset_text(text, "p.toml")
        assert str(info.value) == "p.toml: runs: a preset needs at least one [[runs]] entry"


def test_duplicate_run_names_point_at_the_second_run() -> None:
    with pytest.raises(PresetError) as info:
        load_preset_text('[[runs]]\nname = "x"\n[[runs]]\nname = "y"\n[[runs]]\nname = "x"\n', "p.toml")
    assert str(info.value) == (
        "p.toml: runs[2] (x).name: duplicate run name 'x' (runs[0] has it too): run names must be unique"
    )


@pytest.mark.parametrize(
    "name", ["x/../../../escaped", "../up", "..", ".hidden", "a b", "a\\\\b", "", "-dash", "x" * 101]
)
def test_preset_names_that_could_leave_the_runs_folder_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(GOOD.replace('name = "t"', f'name = "{name}"'))
    with pytest.raises(PresetError) as info:
        load_preset(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: name: a preset name may hold only letters, digits and - _ . +")
    assert repr(name.replace("\\\\", "\\")) in message


def test_a_name_taken_from_the_file_is_made_valid(tmp_path: Path) -> None:
    path = tmp_path / "my first preset.toml"
    path.write_text(GOOD.replace('name = "t"\n', ""))
    assert load_preset(str(path)).preset.name == "my-first-preset"
    assert load_preset(str(path), ["name=v2.1_final+x"]).preset.name == "v2.1_final+x"
    with pytest.raises(PresetError, match=r"\(with --set name=a/b\): name: a preset name may hold only"):
        load_preset(str(path), ["name=a/b"])


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ('{ name = "step", step_size = 0 }', "scheduler 'step': step_size must be an integer >= 1 (got 0)"),
        ('{ name = "step", step_size = 1.5 }', "scheduler 'step': step_size must be an integer >= 1 (got 1.5)"),
        ('{ name = "cosine", T_max = 0 }', "scheduler 'cosine': T_max must be an integer >= 1 (got 0)"),
        ('{ name = "cosine_warm_restarts", T_0 = -2 }', "T_0 must be an integer >= 1 (got -2)"),
        ('{ name = "cosine_warm_restarts", T_0 = 2, T_mult = 0 }', "T_mult must be an integer >= 1 (got 0)"),
        ('{ name = "linear", total_iters = 0 }', "total_iters must be an integer >= 1 (got 0)"),
        ('{ name = "cyclic", step_size_up = 0 }', "step_size_up must be an integer >= 1 (got 0)"),
        ('{ name = "plateau", patience = -1 }', "patience must be an integer >= 0 (got -1)"),
    ],
)
def test_scheduler_integer_arguments_name_field_value_and_range(scheduler: str, message: str) -> None:
    with pytest.raises(PresetError) as info:
        load_preset_text(GOOD.replace('name = "c"', f'name = "c"\nscheduler = {scheduler}'), "p.toml")
    name = scheduler.split('"')[1]
    assert str(info.value) == f"p.toml: runs[2] (c).scheduler: scheduler {name!r}: {message.split(': ')[-1]}"


@pytest.mark.parametrize("value", ["quickstart", "nope", '"./other.toml"'])
def test_extends_on_the_command_line_is_refused_not_ignored(value: str) -> None:
    with pytest.raises(PresetError, match=r"--set 'extends=.*': extends cannot be set on the command line; "
                                          r"write extends = \".*\" in the preset file"):
        load_preset("quickstart", [f"extends={value}"])


def test_json_schema_comes_from_the_models() -> None:
    schema = Preset.model_json_schema()
    assert set(schema["properties"]) == {
        "name", "description", "extends", "data", "model", "train", "runs", "sweep", "max_runs", "target", "tune",
    }
    assert "runs" in schema["required"]


# ------------------------------------------------------------------ property-based

VALUES = st.one_of(
    st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=8), st.booleans(),
    st.lists(st.integers(-2, 600), max_size=3),
)
KEYS = st.sampled_from(
    ["epochs", "batch_size", "lr", "momentum", "dataset", "name", "hidden", "dropout", "loss", "seed",
     "val_fraction", "betas", "scheduler", "optimizer", "nesterov", "warmup_epochs", "xyz"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text_loads_or_raises_preset_error(text: str) -> None:
    with contextlib.suppress(PresetError):
        load_preset_text(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_presets_load_or_raise_preset_error(data: st.DataObject) -> None:
    lines = GOOD.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        key, value = data.draw(KEYS), data.draw(VALUES)
        rendered = repr(value).replace("'", '"').replace("True", "true").replace("False", "false")
        lines[i] = data.draw(st.sampled_from([f"{key} = {rendered}", lines[i][: len(lines[i]) // 2], ""]))
    with contextlib.suppress(PresetError):
        load_preset_text("\n".join(lines))
