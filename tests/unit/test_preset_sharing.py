"""Sharing presets: resolution order, `extends`, sweeps, repeated seeds and the target."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from optlab.errors import PresetError
from optlab.preset.expand import format_value
from optlab.preset.loader import bundled_dir, find_preset, load_preset, load_preset_text, preset_sources

BASE = """
name = "base"
description = "The base."
[data]
dataset = "digits"
[model]
hidden = [16]
[train]
epochs = 2
batch_size = 32
optimizer = { name = "sgd", lr = 0.1, momentum = 0.9 }
[[runs]]
name = "sgd"
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------ resolution order


def test_a_name_resolves_project_then_user_then_bundled(project: Path) -> None:
    user = Path(os.environ["OPTLAB_PRESETS"])
    assert find_preset("quickstart").resolve() == (bundled_dir() / "quickstart.toml").resolve()
    write(user / "quickstart.toml", BASE)
    assert find_preset("quickstart") == user / "quickstart.toml"
    write(project / "presets" / "quickstart.toml", BASE)
    assert find_preset("quickstart") == Path("presets") / "quickstart.toml"
    origins = [s.origin for s in preset_sources() if s.name == "quickstart"]
    assert origins == ["project", "user", "bundled"]


# ------------------------------------------------------------------ extends


def test_extends_a_relative_path_deep_merges(project: Path) -> None:
    write(project / "shared" / "base.toml", BASE)
    child = write(project / "exp" / "child.toml", """
extends = "../shared/base.toml"
[train]
epochs = 3
[[runs]]
name = "adam"
optimizer = { lr = 3e-4 }
[[runs]]
name = "rmsprop"
optimizer = { name = "rmsprop", lr = 1e-3 }
""")
    loaded = load_preset(str(child))
    assert loaded.preset.name == "child" and loaded.preset.description == "The base."
    runs = {r.name: r for r in loaded.resolved_runs()}
    assert list(runs) == ["sgd", "adam", "rmsprop"]  # same name changes a run, a new one is added
    assert runs["adam"].optimizer.name == "adam" and runs["adam"].optimizer.lr == 3e-4
    assert runs["sgd"].epochs == 3 and runs["sgd"].batch_size == 32  # [train] merged key by key
    assert runs["sgd"].optimizer.kwargs == {"momentum": 0.9}
    assert runs["rmsprop"].optimizer.kwargs == {}  # another optimizer name replaces, never inherits


def test_extends_a_name_and_a_project_preset_may_extend_the_bundled_one_it_shadows(project: Path) -> None:
    write(project / "presets" / "quickstart.toml", 'extends = "quickstart"\n[train]\nepochs = 1\n')
    loaded = load_preset("quickstart")
    assert loaded.path == Path("presets") / "quickstart.toml"
    assert loaded.preset.train.epochs == 1 and len(loaded.preset.runs) == 6
    write(project / "mine.toml", 'extends = "quickstart"\nname = "mine"\n')
    assert load_preset("mine.toml").preset.train.epochs == 1  # the project's quickstart wins


def test_a_shadowing_chain_goes_down_the_layers_project_user_bundled(project: Path) -> None:
    user = Path(os.environ["OPTLAB_PRESETS"])
    write(project / "presets" / "quickstart.toml", 'extends = "quickstart"\n[train]\nepochs = 1\n')
    write(user / "quickstart.toml", 'extends = "quickstart"\n[train]\nbatch_size = 16\n')
    loaded = load_preset("quickstart")  # project -> user -> bundled, not project -> user -> project
    assert loaded.path == Path("presets") / "quickstart.toml"
    assert loaded.preset.train.epochs == 1 and loaded.preset.train.batch_size == 16
    assert len(loaded.preset.runs) == 6  # the bundled quickstart's runs
    assert load_preset(str(user / "quickstart.toml")).preset.train.epochs != 1  # the user one skips the project's


def test_extends_cycle_is_a_clear_error(project: Path) -> None:
    write(project / "a.toml", 'extends = "b.toml"\n' + BASE.replace('name = "base"', 'name = "a"'))
    write(project / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(PresetError, match=r"extends: cycle \(.*a\.toml -> .*b\.toml -> .*a\.toml\)"):
        load_preset("a.toml")
    write(project / "self.toml", 'extends = "self.toml"\n')
    with pytest.raises(PresetError, match="self.toml: extends: cycle"):
        load_preset("self.toml")


def test_extends_missing_base_names_file_and_field(project: Path) -> None:
    write(project / "c.toml", 'extends = "nothere"\n')
    with pytest.raises(PresetError, match=r"c\.toml: extends = 'nothere': unknown preset 'nothere'"):
        load_preset("c.toml")
    write(project / "d.toml", 'extends = "missing/base.toml"\n')
    with pytest.raises(PresetError, match=r"d\.toml: extends = 'missing/base.toml': .*no such preset file"):
        load_preset("d.toml")
    write(project / "e.toml", "extends = 3\n")
    with pytest.raises(PresetError, match=r"e\.toml: extends: expected a preset name"):
        load_preset("e.toml")


def test_cli_exit_code_2_for_a_bad_base(project: Path) -> None:
    from typer.testing import CliRunner

    from optlab.cli.main import app

    write(project / "c.toml", 'extends = "nothere"\n')
    result = CliRunner().invoke(app, ["compare", "c.toml"])
    assert result.exit_code == 2 and "extends = 'nothere'" in result.output


# ------------------------------------------------------------------ sweeps


def test_sweep_expands_a_grid_over_each_run_with_readable_names() -> None:
    loaded = load_preset_text(BASE + '[sweep]\n"optimizer.lr" = [1e-3, 1e-2]\nbatch_size = [32, 128]\n')
    runs = loaded.resolved_runs()
    assert [r.name for r in runs] == [
        "sgd-lr1e-3-bs32", "sgd-lr1e-3-bs128", "sgd-lr1e-2-bs32", "sgd-lr1e-2-bs128",
        "adam-lr1e-3-bs32", "adam-lr1e-3-bs128", "adam-lr1e-2-bs32", "adam-lr1e-2-bs128",
    ]
    by = {r.name: r for r in runs}
    assert by["adam-lr1e-2-bs128"].optimizer.name == "adam"
    assert by["adam-lr1e-2-bs128"].optimizer.lr == 1e-2 and by["adam-lr1e-2-bs128"].batch_size == 128
    assert by["sgd-lr1e-3-bs32"].optimizer.kwargs == {"momentum": 0.9}  # only the swept key changes
    assert all(r.group == r.name for r in runs)


def test_sweep_dotted_keys_model_fields_and_value_names() -> None:
    loaded = load_preset_text(BASE + "[sweep]\nmodel.dropout = [0.0, 0.5]\nmodel.hidden = [[8], [8, 8]]\n")
    names = [r.name for r in loaded.resolved_runs()][:4]
    assert names == ["sgd-dropout0-hidden8", "sgd-dropout0-hidden8x8", "sgd-dropout0.5-hidden8",
                     "sgd-dropout0.5-hidden8x8"]
    assert loaded.resolved_runs()[3].model.hidden == [8, 8] and loaded.resolved_runs()[3].model.dropout == 0.5
    # A swept value that does not fit a run is that run's error, named as generated.
    with pytest.raises(PresetError, match=r"runs \(adam-mom0.9\): unknown argument 'momentum'"):
        load_preset_text(BASE + "[sweep]\noptimizer.momentum = [0.9]\n")
    assert format_value(1e-5, True) == "1e-5" and format_value(2.5e-3, True) == "2.5e-3"
    assert format_value(0.1, True) == "1e-1" and format_value(0.5) == "0.5" and format_value(True) == "true"


def test_sweep_cap_is_refused_with_a_clear_message() -> None:
    text = BASE + "[sweep]\nepochs = [1, 2, 3, 4, 5, 6, 7, 8]\nbatch_size = [8, 16, 32, 64, 128]\n"
    with pytest.raises(PresetError, match=r"expands to 80 runs \(2 run\(s\) x 40 sweep combinations\), more "
                                          r"than max_runs = 64.*--set max_runs=80"):
        load_preset_text(text)
    assert len(load_preset_text("max_runs = 80\n" + text).resolved_runs()) == 80


@pytest.mark.parametrize(("sweep", "message"), [
    ("seed = [1, 2]", "repeat over seeds with seeds"),
    ("optimiser.lr = [0.1]", "unknown field 'optimiser'"),
    ("epochs = []", "needs at least one value"),
    ("epochs = 3", "valid list"),
    ('"batch_size.x" = [1]', "'batch_size' is not a table"),
    ('"optimizer.lr" = [-1.0]', r"sweep \(sgd, optimizer.lr = -1.0\): optimizer.lr"),
])
def test_bad_sweeps_are_clear_errors(sweep: str, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        load_preset_text(BASE + "[sweep]\n" + sweep + "\n")


def test_lr_search_is_the_tutorial_with_three_learning_rates() -> None:
    loaded = load_preset("lr-search")
    runs = loaded.resolved_runs()
    tutorial = load_preset("tutorial-fashion-mnist").resolved_runs()[0]
    assert [r.optimizer.lr for r in runs] == [1e-5, 1e-4, 1e-3]
    assert [r.name for r in runs] == ["tutorial-sgd-lr1e-5", "tutorial-sgd-lr1e-4", "tutorial-sgd-lr1e-3"]
    for run in runs:
        assert run.model_dump(exclude={"name", "group", "optimizer"}) == tutorial.model_dump(
            exclude={"name", "group", "optimizer"}
        )
        assert run.optimizer.name == "sgd" and run.optimizer.kwargs == {}
    assert len(loaded.path.read_text().splitlines()) <= 10


def test_a_copy_of_lr_search_elsewhere_still_finds_its_base(project: Path) -> None:
    """It extends the tutorial by name, not by a path that only exists next to the original."""
    copy = write(project / "elsewhere" / "mine.toml", (bundled_dir() / "lr-search.toml").read_text())
    runs = load_preset(str(copy)).resolved_runs()
    assert [r.optimizer.lr for r in runs] == [1e-5, 1e-4, 1e-3]


# ------------------------------------------------------------------ seeds


def test_seeds_repeat_runs_with_names_and_groups() -> None:
    text = BASE.replace("epochs = 2", "epochs = 2\nseeds = [0, 1, 2]") + '[[runs]]\nname = "one"\nseed = 7\n'
    text += '[[runs]]\nname = "own"\nseeds = [5, 6]\n'
    runs = load_preset_text(text).resolved_runs()
    assert [(r.name, r.group, r.seed) for r in runs] == [
        ("sgd@s0", "sgd", 0), ("sgd@s1", "sgd", 1), ("sgd@s2", "sgd", 2),
        ("adam@s0", "adam", 0), ("adam@s1", "adam", 1), ("adam@s2", "adam", 2),
        ("one", "one", 7),  # a run's own seed is more specific than [train] seeds
        ("own@s5", "own", 5), ("own@s6", "own", 6),
    ]


def test_seeds_from_the_command_line_replace_the_presets(project: Path) -> None:
    write(project / "p.toml", BASE.replace("epochs = 2", "epochs = 2\nseeds = [9]") + 'seed = 4\n')
    runs = load_preset("p.toml", seeds=2).resolved_runs()
    assert [(r.name, r.seed) for r in runs] == [("sgd@s0", 0), ("sgd@s1", 1), ("adam@s0", 0), ("adam@s1", 1)]
    single = load_preset("p.toml").resolved_runs()
    assert [(r.name, r.seed) for r in single] == [("sgd", 9), ("adam", 4)]  # one seed: no suffix


def test_seed_and_seeds_in_one_table_are_an_error_not_a_silent_choice(project: Path) -> None:
    with pytest.raises(PresetError, match=r"train: set either seed \(3\) or seeds \(\[0, 1\]\), not both"):
        load_preset_text(BASE.replace("epochs = 2", "epochs = 2\nseed = 3\nseeds = [0, 1]"))
    with pytest.raises(PresetError, match=r"runs\[1\] \(adam\): set either seed"):
        load_preset_text(BASE + "seed = 1\nseeds = [2, 3]\n")
    # A later setting replaces the other one instead of clashing with it: --set over the file,
    # and an extending preset over its base.
    write(project / "p.toml", BASE.replace("epochs = 2", "epochs = 2\nseed = 3"))
    assert [r.seed for r in load_preset("p.toml", ["train.seeds=[0, 1]"]).resolved_runs()] == [0, 1, 0, 1]
    write(project / "q.toml", BASE.replace("epochs = 2", "epochs = 2\nseeds = [5, 6]"))
    assert [r.seed for r in load_preset("q.toml", ["train.seed=2"]).resolved_runs()] == [2, 2]
    write(project / "child.toml", 'extends = "p.toml"\n[train]\nseeds = [7, 8]\n')
    assert [r.seed for r in load_preset("child.toml").resolved_runs()] == [7, 8, 7, 8]


def test_seeds_must_be_distinct_and_count_towards_the_cap() -> None:
    with pytest.raises(PresetError, match="seeds must be distinct"):
        load_preset_text(BASE.replace("epochs = 2", "epochs = 2\nseeds = [1, 1]"))
    with pytest.raises(PresetError, match=r"expands to 6 runs \(2 run\(s\) x seeds\), more than max_runs = 5"):
        load_preset_text("max_runs = 5\n" + BASE.replace("epochs = 2", "epochs = 2\nseeds = [0, 1, 2]"))


# ------------------------------------------------------------------ target


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ('{ metric = "val_accuracy", value = 95 }', r"target.value: an accuracy target must be in \[0, 1\] "
                                                     r"\(for 95% write 0.95\) \(got 95\)"),
        ('{ metric = "train_accuracy", value = -0.1 }', r"target.value: an accuracy target must be in \[0, 1\]"),
        ('{ metric = "val_loss", value = -1 }', r"target.value: a loss target must be >= 0"),
        ('{ metric = "val_loss", value = nan }', r"target.value: a target must be a finite number"),
    ],
)
def test_unreachable_targets_are_refused(target: str, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        load_preset_text(f"target = {target}\n" + BASE)


def test_target_is_validated() -> None:
    ok = load_preset_text('target = { metric = "val_loss", value = 0.3 }\n' + BASE)
    assert ok.preset.target is not None and ok.preset.target.metric == "val_loss"
    with pytest.raises(PresetError, match="unknown target metric 'val_f1'"):
        load_preset_text('target = { metric = "val_f1", value = 0.3 }\n' + BASE)
    with pytest.raises(PresetError, match="needs a validation split"):
        load_preset_text('target = { value = 0.9 }\n' + BASE.replace('dataset = "digits"',
                                                                      'dataset = "digits"\nval_fraction = 0.0'))
    with pytest.raises(PresetError, match="needs a classification dataset"):
        load_preset_text('target = { value = 0.9 }\n' + BASE.replace('"digits"', '"diabetes"').replace(
            "batch_size = 32", 'batch_size = 32\nloss = "mse"'))


def test_a_run_that_sets_only_the_lr_keeps_the_train_optimizer_also_under_a_sweep() -> None:
    """`optimizer = { lr = 3e-4 }` in a run changes the learning rate of [train]'s optimizer;
    the optimizer model's default name ("sgd") must not replace [train]'s adam."""
    loaded = load_preset_text(
        'name = "t"\n[data]\ndataset = "digits"\n'
        '[train]\noptimizer = { name = "adam", lr = 1e-3, betas = [0.8, 0.9] }\n'
        '[sweep]\nbatch_size = [32, 64]\n'
        '[[runs]]\nname = "a"\noptimizer = { lr = 3e-4 }\n'
        '[[runs]]\nname = "c"\noptimizer = { name = "sgd", lr = 0.1, momentum = 0.9 }\n'
    )
    runs = {r.name: r for r in loaded.resolved_runs()}
    for bs in (32, 64):
        a, c = runs[f"a-bs{bs}"], runs[f"c-bs{bs}"]
        assert (a.optimizer.name, a.optimizer.lr, a.optimizer.kwargs) == ("adam", 3e-4, {"betas": [0.8, 0.9]})
        assert (c.optimizer.name, c.optimizer.kwargs) == ("sgd", {"momentum": 0.9})  # another name replaces
        assert a.batch_size == bs
