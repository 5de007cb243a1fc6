"""`optlab tui PRESET --tune`: a real `optlab tune` child, its trials shown as they end, the
tuned ranking at the end, detach and reattach, and bad options answered before any child runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tui.helpers import wait_until

from optlab.runs.store import read_events
from optlab.tui.app import OptlabApp
from optlab.tui.process import child_alive, log_path, pid_path
from optlab.tui.screens.quit import QuitScreen
from optlab.tui.screens.tune import TuneScreen
from optlab.tui.tune_process import TuneProcess
from optlab.tuning.live import SETTINGS_FILE, TuneLog, read_settings

pytest.importorskip("optuna")


def tune_preset(directory: Path, epochs: int = 2) -> Path:
    """Two candidates on 300 digits, a 16-unit MLP: a trial trains in a fraction of a second."""
    path = directory / "tt.toml"
    path.write_text(
        'name = "tt"\n[data]\ndataset = "digits"\ntrain_limit = 300\n[model]\nname = "mlp"\nhidden = [16]\n'
        f"[train]\nepochs = {epochs}\nbatch_size = 64\nseed = 0\n"
        '[[runs]]\nname = "sgd"\noptimizer = { name = "sgd", lr = 0.05 }\n'
        '[[runs]]\nname = "adam"\noptimizer = { name = "adam", lr = 1e-3 }\n',
        encoding="utf-8",
    )
    return path


def trial_rows(screen: TuneScreen) -> dict[str, tuple[str, str]]:
    """The trials table as shown: run -> (state, value)."""
    table = screen.trials_table
    rows = {}
    for key in table.rows:
        state, value = table.get_cell(key, "state"), table.get_cell(key, "value")
        rows[str(key.value)] = (str(state), str(value))
    return rows


def dots(screen: TuneScreen) -> int:
    return sum(len(s.xs) for s in screen.chart.series)


def test_the_tuning_screen_shows_trials_as_they_end_then_the_ranking(tmp_path: Path) -> None:
    asyncio.run(_live_study(tmp_path))


async def _live_study(tmp_path: Path) -> None:
    run_dir = tmp_path / "study"
    args = ["--budget", "3", "--parallel", "1", "--final-seeds", "2"]
    process = TuneProcess(str(tune_preset(tmp_path)), run_dir, "cpu", tune_args=args)
    process.start()
    app = OptlabApp(process=process, label="tt")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, TuneScreen)
        await wait_until(pilot, lambda: screen.summary is not None and process.poll() is not None, 120,
                         "the study to end")
        await pilot.pause(0.2)
        rows = trial_rows(screen)
        tune = json.loads((run_dir / "tune.json").read_text())
        told = {t["run"]: t for c in tune["candidates"] for t in c["trials"]}
        assert set(rows) == set(told) and len(rows) == 6
        assert list(rows) == list(screen.study.trials)  # type: ignore[union-attr]  # in the order trials started
        assert screen.trials_table.cursor_row == 5  # the table followed the new trials
        for run, (state, value) in rows.items():
            assert state == told[run]["status"]
            assert value == f"{told[run]['value']:.4f}"
        assert dots(screen) == 6
        # The tuned ranking, as `optlab tune` prints it, and each candidate's best on the way.
        ranking = screen.query_one("#tune-ranking")
        assert ranking.display and ranking.row_count == 2  # type: ignore[attr-defined]
        ranked = [str(ranking.get_row_at(i)[1]).removeprefix("■ ") for i in range(2)]  # type: ignore[attr-defined]
        assert ranked == tune["ranking"]["order"]
        assert "finished" in str(screen.status_message())
        await pilot.press("c")  # the best-so-far curves
        await pilot.pause(0.2)
        assert screen.chart_mode == "best"
        best = {c["name"]: c["best"]["value"] for c in tune["candidates"]}
        assert {s.label: s.ys[-1] for s in screen.chart.series} == best
    assert process.poll() == 0

    # The fold of the events alone (what the screen showed before tune.json) says what the
    # service told Optuna: same statuses and values for every trial.
    settings = read_settings(run_dir)
    assert settings is not None
    study = TuneLog(settings)
    study.apply(read_events(run_dir).events)
    assert {r: (t.status, t.value) for r, t in study.trials.items()} == {
        r: (t["status"], t["value"]) for r, t in told.items()}
    assert study.ended and study.finals_ended() == 4
    await _replayed_as_trials_end(run_dir, tmp_path / "replay")


async def _replayed_as_trials_end(run_dir: Path, replay: Path) -> None:
    """Trials appear as they end, each with its sensitivity dot: the study's events written
    again into a directory the view follows, up to the first trial's end, then the rest (no
    timing involved: a live study on a busy machine can end between two reads)."""
    replay.mkdir()
    for name in (SETTINGS_FILE, "preset.toml"):
        (replay / name).write_bytes((run_dir / name).read_bytes())
    lines = (run_dir / "events.jsonl").read_text().splitlines(keepends=True)
    first_end = next(i for i, line in enumerate(lines) if '"run_ended"' in line and "#" in json.loads(line)["run"])
    (replay / "events.jsonl").write_text("".join(lines[:first_end + 1]))
    app = OptlabApp(view=replay)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, TuneScreen)
        await wait_until(pilot, lambda: sum(s == "complete" for s, _ in trial_rows(screen).values()) == 1, 20,
                         "the first trial's row")
        assert dots(screen) == 1
        with (replay / "events.jsonl").open("a") as f:
            f.writelines(lines[first_end + 1:])
        await wait_until(pilot, lambda: sum(s == "complete" for s, _ in trial_rows(screen).values()) == 6, 20,
                         "every trial's row")
        assert dots(screen) == 6


def test_a_pruned_study_folds_as_the_service_told_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "pruned"
    cmd = [sys.executable, "-m", "optlab", "tune", str(tune_preset(tmp_path, epochs=4)), "--out", str(run_dir), "-q",
           "--budget", "6", "--parallel", "3", "--prune", "median", "--final-seeds", "1", "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    settings = read_settings(run_dir)
    assert settings is not None
    study = TuneLog(settings)
    study.apply(read_events(run_dir).events)
    tune = json.loads((run_dir / "tune.json").read_text())
    told = {t["run"]: (t["status"], t["value"]) for c in tune["candidates"] for t in c["trials"]}
    assert any(status == "pruned" for status, _ in told.values())  # the rule this test is about
    assert {r: (t.status, t.value) for r, t in study.trials.items()} == told
    assert {c.name: c.best.run for c in study.candidates.values() if c.best} == {
        c["name"]: c["best"]["run"] for c in tune["candidates"] if c["best"]}


def test_detach_leaves_the_study_running_and_view_reattaches(tmp_path: Path, reap: list[int]) -> None:
    asyncio.run(_detach_then_view(tmp_path, reap))


async def _detach_then_view(tmp_path: Path, reap: list[int]) -> None:
    run_dir = tmp_path / "study"
    process = TuneProcess(str(tune_preset(tmp_path)), run_dir, "cpu", tune_args=["--budget", "200", "--parallel", "1"])
    process.start()
    assert process.pid is not None
    reap.append(process.pid)
    first = OptlabApp(process=process, label="tt")
    async with first.run_test(size=(100, 30)) as pilot:
        screen = first.screen
        assert isinstance(screen, TuneScreen)
        await wait_until(pilot, lambda: screen.study is not None and screen.study.counts()["ended"] >= 1, 60,
                         "a trial to end")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(first.screen, QuitScreen), 5, "the quit question")
        await pilot.press("d")
        await wait_until(pilot, lambda: first.return_code is not None, 5, "the app to exit")
    assert first.detached
    assert process.poll() is None and child_alive(run_dir) is True  # the study goes on

    second = OptlabApp(view=run_dir)
    async with second.run_test(size=(100, 30)) as pilot:
        view = second.screen
        assert isinstance(view, TuneScreen) and view.process is None
        await wait_until(pilot, lambda: view.study is not None and view.study.counts()["ended"] >= 1, 20, "the replay")
        assert view.live and "attached" in str(view.status_message())
        ended = view.study.counts()["ended"]  # type: ignore[union-attr]
        await wait_until(pilot, lambda: view.study.counts()["ended"] > ended, 30,  # type: ignore[union-attr]
                         "a trial to end while attached")
        await wait_until(pilot, lambda: len(trial_rows(view)) >= ended + 1, 5, "its row")
        await pilot.press("d")  # the devices pane: this machine's CPU, where the trials train
        await pilot.pause(0.2)
        assert "cpu" in str(view.query_one("#devices").render())
        # Stop from the view: the study winds down (SIGINT), writes tune.json, stays resumable.
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(second.screen, QuitScreen), 5, "the quit question")
        await pilot.press("s")
        await wait_until(pilot, lambda: second.return_code is not None, 60, "stop, then exit")
    assert process.proc is not None and process.proc.wait(timeout=30) == 130
    tune = json.loads((run_dir / "tune.json").read_text())
    assert tune["interrupted"] is True
    assert sum(len(c["trials"]) for c in tune["candidates"]) >= ended + 1


def _tui(tmp_path: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = prelude + "from optlab.cli.main import run; run()"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, "tui", *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env)


@pytest.mark.parametrize(
    ("args", "prelude", "says"),
    [
        (["--budget", "3"], "", "--budget: only with --tune"),
        (["--tune", "--seeds", "2"], "", "--seeds: not with --tune"),
        (["--tune"], "import sys; sys.modules['optuna'] = None; ", "pip install 'optlab[tune]'"),
        (["--tune", "--budget", "0"], "", "--budget 0"),  # the child's own check, as `optlab tune` says it
        (["--tune", "--sampler", "nope"], "", "--sampler 'nope'"),
    ],
)
def test_bad_tuning_options_exit_2_and_write_nothing(tmp_path: Path, args: list[str], prelude: str, says: str) -> None:
    preset = tune_preset(tmp_path)
    out = tmp_path / "runs" / "x"
    done = _tui(tmp_path, str(preset), "--out", str(out), *args, prelude=prelude)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert not out.exists() and not log_path(out).exists() and not pid_path(out).exists()


def test_the_command_line_starts_a_tune_child_and_opens_the_tuning_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`optlab tui PRESET --tune ...` through the CLI: the child accepts the options it is
    given (it writes preset.toml only then) and the app is launched with it."""
    from typer.testing import CliRunner

    from optlab.cli import tui_commands
    from optlab.cli.main import app

    launched: list[TuneProcess] = []

    def launch(process: TuneProcess, label: str) -> int:
        launched.append(process)
        process.stop(timeout=30)
        return 0

    monkeypatch.setattr(tui_commands, "_launcher", lambda: launch)
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["tui", str(tune_preset(tmp_path)), "--tune", "--out", str(out), "--device", "cpu",
                                      "--budget", "50", "--prune", "asha", "--final-seeds", "1", "--run", "sgd",
                                      "--threads", "1"])
    assert result.exit_code == 0, result.output
    [process] = launched
    assert isinstance(process, TuneProcess) and process.poll() is not None
    cmd = process.command
    assert cmd[3:5] == ["tune", str(tune_preset(tmp_path))]
    assert cmd[cmd.index("--budget") + 1] == "50" and cmd[cmd.index("--prune") + 1] == "asha"
    assert cmd[cmd.index("--run") + 1] == "sgd" and cmd[cmd.index("--threads") + 1] == "1"
    assert (out / "preset.toml").is_file()


def test_tune_options_pass_through_as_given() -> None:
    from optlab.cli.backend import Backend, Where
    from optlab.cli.tui_commands import tune_args, tune_backend_args

    given: dict[str, object] = {"budget": 8, "sampler": "tpe", "prune": None, "final_seeds": 2, "objective": None,
                                "parallel": None, "storage": None}
    assert tune_args(True, None, given, ["a", "b"]) == ["--budget", "8", "--sampler", "tpe", "--final-seeds", "2",
                                                        "--run", "a", "--run", "b"]
    assert tune_args(False, None, dict.fromkeys(given), []) == []
    # Only what differs from the defaults: `optlab tune` takes fewer of these than compare.
    assert tune_backend_args(Where()) == []
    assert tune_backend_args(Where(threads=2)) == ["--threads", "2"]
    assert tune_backend_args(Where(backend=Backend.processes, devices="cpu,cpu")) == [
        "--backend", "processes", "--devices", "cpu,cpu"]


def test_the_settings_file_is_the_services() -> None:
    from optlab.tuning import service

    assert service.SETTINGS_FILE == SETTINGS_FILE
