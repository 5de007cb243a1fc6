"""The TUI's parts without a training child: series helpers, the event tail, the chart widget
(log scale under live updates), the control file, the start screen and the CLI's checks."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from typer.testing import CliRunner

from optlab.runs.series import Series, downsample, ema
from optlab.runs.store import EventTail
from optlab.tui.process import read_control, write_control
from optlab.tui.widgets.chart import Chart

# ---------------------------------------------------------------- series helpers


def test_ema_is_debiased_and_skips_non_finite_values() -> None:
    assert ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no pull toward zero
    xs = [1.0, 3.0, math.nan, 5.0]
    out = ema(xs, 0.6)
    assert out[0] == 1.0
    assert out[1] == pytest.approx((0.6 * 0.4 * 1.0 + 0.4 * 3.0) / (1 - 0.6**2))
    assert math.isnan(out[2]) and math.isfinite(out[3])
    assert ema(xs[:2], 0.0) == xs[:2]


def test_chart_columns_follow_the_points_through_a_restart() -> None:
    """The per-run columns and the incrementally smoothed loss equal what the points give,
    also after a resumed run reports earlier steps again (the newer reports win)."""
    from optlab.training.events import Progress, RunStarted
    from optlab.tui.state import ExperimentState

    state = ExperimentState()
    reports = [(step, 1.0 / step) for step in range(1, 40)] + [(step, 2.0 / step) for step in range(20, 60)]
    events = [RunStarted(run="a", steps_per_epoch=10, total_steps=60)]
    for i, (step, loss) in enumerate(reports):
        events.append(Progress(run="a", step=step, samples_seen=step * 8, train_loss=loss, lr=0.1, elapsed_s=i * 0.1))
    for chunk in range(0, len(events), 7):  # as a tail delivers them, smoothing asked in between
        state.apply(events[chunk : chunk + 7])
        state.train_loss("a", "step", 0.9)
    points = state.run_series("a").progress
    assert [p.step for p in points] == list(range(1, 60))
    for axis in ("step", "epoch", "samples", "time"):
        xs, ys = state.train_loss("a", axis, 0.9)
        assert xs == [state.run_series("a").x_of(p, axis) for p in points]
        assert ys == pytest.approx(ema([p.train_loss for p in points], 0.9), rel=1e-12)
    assert state.learning_rate("a", "epoch")[1] == [0.1] * 59


def test_a_run_not_started_while_the_experiment_runs_shows_waiting() -> None:
    """A Ray actor waiting for a GPU (or a worker still starting) reads `waiting`, not `pending`;
    once the experiment has ended, a run that never started is `pending` again."""
    from optlab.training.events import ExperimentEnded, ExperimentStarted, RunStarted
    from optlab.tui.state import ExperimentState
    from optlab.tui.widgets.tables import run_cells

    state = ExperimentState()
    state.apply([ExperimentStarted(run="", run_names=["a", "b"]),
                 RunStarted(run="a", steps_per_epoch=10, total_steps=20, placement={"device": "cpu"})])
    assert [run_cells(state, name, i, None)["status"].plain for i, name in enumerate("ab")] == ["running", "waiting"]
    state.apply([ExperimentEnded(run="", status="interrupted")])
    assert run_cells(state, "b", 1, None)["status"].plain == "pending"


def test_downsample_keeps_ends_and_spikes_within_budget() -> None:
    xs = [float(i) for i in range(10_000)]
    ys = [math.sin(i / 300) for i in range(10_000)]
    ys[4321] = 50.0  # a spike must survive
    ys[777] = -50.0
    dx, dy = downsample(xs, ys, 160)
    assert len(dx) <= 162
    assert dx == sorted(dx) and dx[0] == 0.0 and dx[-1] == 9999.0
    assert 50.0 in dy and -50.0 in dy
    assert downsample(xs[:50], ys[:50], 160) == (xs[:50], ys[:50])


def test_event_tail_holds_back_a_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read() == []  # no file yet
    start = {"v": 1, "type": "experiment_started", "run": "", "run_names": ["a"]}
    progress = {"v": 1, "type": "progress", "run": "a", "step": 5, "train_loss": 1.0}
    line = json.dumps(progress)
    path.write_text(json.dumps(start) + "\n" + line[:20])
    events = tail.read()
    assert [e.kind for e in events] == ["experiment_started"]
    with open(path, "a") as fh:
        fh.write(line[20:] + "\n{corrupt\n")
    events = tail.read()
    assert [e.kind for e in events] == ["progress"] and events[0].step == 5  # type: ignore[attr-defined]
    assert tail.bad_lines == [3]  # line numbers, as read_events reports them
    path.write_text(json.dumps(start) + "\n")  # replaced by a shorter file: read again from the top
    assert [e.kind for e in tail.read()] == ["experiment_started"]


# ---------------------------------------------------------------- control file


def test_control_file_is_the_one_the_runner_reads(tmp_path: Path) -> None:
    from optlab.runs import control as core
    from optlab.runs.control import FileControl
    from optlab.runs.control import read_control as core_read

    assert write_control is core.write_control and read_control is core.read_control  # one copy

    control = FileControl(tmp_path)
    write_control(tmp_path, paused=True)
    control.poll()
    assert control.paused and core_read(tmp_path) == {"paused": True}
    write_control(tmp_path, stop="adam")
    write_control(tmp_path, stop="sgd", paused=False)
    control._next_poll = 0.0  # poll again now (it polls at most every 0.1 s)
    control.poll()
    assert not control.paused
    assert control.should_stop("adam") and control.should_stop("sgd") and not control.should_stop("rms")
    assert read_control(tmp_path) == {"paused": False, "stop": ["adam", "sgd"]}
    write_control(tmp_path, stop_all=True)
    control._next_poll = 0.0
    control.poll()
    assert control.should_stop("rms")


# ---------------------------------------------------------------- the chart widget


class ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Chart("loss", id="chart")


def test_chart_log_scale_under_live_updates() -> None:
    asyncio.run(_chart_log_scale())


async def _chart_log_scale() -> None:
    app = ChartApp()
    async with app.run_test(size=(80, 24)) as pilot:
        chart = app.query_one(Chart)
        chart.log_y = True
        xs: list[float] = []
        ys: list[float] = []
        drawn = set()
        # Growing series as training would send them, including the values a log axis cannot
        # show: zero (a learning rate decayed to 0), negatives, NaN (a diverged run), and an
        # empty series (a run that has not reported yet).
        for step in range(1, 13):
            xs.append(float(step))
            ys.append([0.0, -1.0, math.nan][step % 3] if step % 4 == 0 else 2.0 / step)
            chart.set_series([Series("a", xs, ys, 39), Series("b", [], [], 208), Series("c", xs, [0.0] * len(xs), 42)])
            await pilot.pause()
            assert chart.error == "", chart.error
            drawn.add(chart.drawn)
        assert chart.canvas.builds >= 12 and len(drawn) > 6
        assert chart.hidden_points > 12  # the zeros and negatives left out, and counted
        assert "hidden" in str(chart.border_subtitle)
        chart.log_y = False
        await pilot.pause()
        assert chart.error == "" and chart.hidden_points == 0
        # A long series is reduced to about two points per column before plotting.
        many = [float(i) for i in range(20_000)]
        chart.set_series([Series("a", many, [1.0 + (i % 7) for i in range(20_000)], 39)])
        await pilot.pause()
        assert chart.plotted and chart.plotted[0] <= 2 * chart.canvas.size.width + 2


def _y_labels(drawn: str) -> list[float]:
    return [float(line.split("┤")[0]) for line in drawn.splitlines() if "┤" in line]


def test_a_diverging_run_does_not_flatten_the_others() -> None:
    asyncio.run(_diverging())


async def _diverging() -> None:
    app = ChartApp()
    async with app.run_test(size=(80, 24)) as pilot:
        chart = app.query_one(Chart)
        xs = [float(i) for i in range(1, 201)]
        healthy = [2.3 * math.exp(-i / 20) + 0.05 for i in range(200)]  # a steep but normal start
        chart.set_series([Series("ok", xs, healthy, 39)])
        await pilot.pause()
        assert chart.clipped_points == 0 and max(_y_labels(chart.drawn)) >= 2  # its start is in view
        falling = [2.3 - 2.0 * i / 299 for i in range(300)]  # 2.3 down to 0.3, steadily
        chart.set_series([Series("ok", [float(i) for i in range(300)], falling, 39)])
        await pilot.pause()
        assert chart.clipped_points == 0 and max(_y_labels(chart.drawn)) >= 2
        blowing = [1.0] * 190 + [10.0 ** (3 * k) for k in range(1, 10)] + [math.nan]  # up to 1e27, then NaN
        chart.set_series([Series("ok", xs, healthy, 39), Series("boom", xs, blowing, 208)])
        await pilot.pause()
        assert chart.error == "" and chart.clipped_points == 9
        assert max(_y_labels(chart.drawn)) < 10  # scaled to the healthy values, not to 1e27
        assert "9 outliers above the scale" in str(chart.border_subtitle)
        chart.log_y = True  # every decade fits a log axis: nothing is cut off there
        await pilot.pause()
        assert chart.clipped_points == 0 and "outliers" not in str(chart.border_subtitle)
        assert "1e24" in chart.drawn or "1e27" in chart.drawn or "1e25" in chart.drawn


# ---------------------------------------------------------------- start screen


def test_q_on_an_ended_experiment_opened_from_the_start_screen_goes_back_to_it(tmp_path: Path) -> None:
    asyncio.run(_back_to_the_start_screen(tmp_path))


async def _back_to_the_start_screen(tmp_path: Path) -> None:
    from tui.helpers import wait_until

    from optlab.tui.app import OptlabApp
    from optlab.tui.screens.experiment import ExperimentScreen
    from optlab.tui.screens.start import StartScreen

    ended = tmp_path / "runs" / "20260101-120000-tiny"
    ended.mkdir(parents=True)
    events = [{"v": 1, "type": "experiment_started", "run": "", "preset": {"name": "tiny"}, "run_names": ["a"]},
              {"v": 1, "type": "experiment_ended", "run": "", "status": "finished", "wall_time_s": 1.0}]
    (ended / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    app = OptlabApp(runs_base=tmp_path / "runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        start = app.screen
        assert isinstance(start, StartScreen)
        app.open_view(ended)  # as Enter on the recent run does
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await wait_until(pilot, lambda: not screen.live, 5, "the ended experiment read")
        await pilot.press("q")
        await pilot.pause()
        assert app.screen is start and app.return_code is None  # back, not quit
        await pilot.press("q")  # the start screen's q still quits
        await wait_until(pilot, lambda: app.return_code is not None, 5, "q on the start screen to quit")


def test_start_screen_preselects_quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_start_screen(tmp_path, monkeypatch))


async def _start_screen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import OptionList, Static

    from optlab.tui.app import OptlabApp
    from optlab.tui.screens.keys import KeysScreen
    from optlab.tui.screens.start import StartScreen

    monkeypatch.chdir(tmp_path)  # no ./presets
    recent = tmp_path / "runs" / "20260101-120000-tiny"
    recent.mkdir(parents=True)
    start = {"v": 1, "type": "experiment_started", "run": "", "preset": {"name": "tiny"}, "run_names": ["a", "b"]}
    (recent / "events.jsonl").write_text(json.dumps(start) + "\n")
    started: list[str] = []
    viewed: list[Path] = []
    app = OptlabApp(runs_base=tmp_path / "runs")
    monkeypatch.setattr(app, "start_experiment", lambda preset, *a, **k: started.append(preset))
    monkeypatch.setattr(app, "open_view", viewed.append)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, StartScreen)
        presets = screen.query_one("#presets", OptionList)
        assert presets.highlighted is not None
        assert screen.presets[presets.highlighted].name == "quickstart"
        await pilot.press("enter")
        assert started == ["quickstart"]
        recent_list = screen.query_one("#recent", OptionList)
        assert recent_list.display and recent_list.option_count == 1
        assert "tiny" in str(recent_list.get_option_at_index(0).prompt)
        await pilot.press("tab", "enter")
        assert viewed == [recent]
        await pilot.press("question_mark")  # every key listed, whatever the footer's width
        keys = app.screen
        assert isinstance(keys, KeysScreen)
        listed = str(keys.query_one("#keys-text", Static).render())
        assert "quit" in listed and "presets / runs" in listed and "keys" in listed
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("q")


def test_start_screen_describes_the_preset_as_it_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """extends followed, [sweep] expanded, seeds repeated, inherited optimizer shown; and
    without importing torch into the TUI process."""
    import subprocess
    import sys

    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "mine.toml").write_text(
        'extends = "quickstart"\ndescription = "mine"\n[train]\nseeds = [0, 1]\nepochs = 3\n'
        '[sweep]\nbatch_size = [32, 128]\n[[runs]]\nname = "adam"\noptimizer = { lr = 3e-3 }\n'
    )
    (presets / "broken.toml").write_text('[train]\nepochs = 0\n')
    (presets / "remote.toml").write_text('extends = "http://192.0.2.1/base.toml"\n')  # never fetched here
    (presets / "my preset.toml").write_text('extends = "quickstart"\n')  # named my-preset, as compare would
    code = (
        "import sys; from optlab.tui.screens.start import describe, preset_choices; "
        "texts = {s.name: describe(s).plain for s in preset_choices()}; "
        "print('torch' in sys.modules); print(texts['mine']); print('---'); print(texts['broken']); "
        "print('---'); print(texts['remote']); print('---'); print(texts['my preset'])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    torch_loaded, rest = out.split("\n", 1)
    mine, broken, remote, spaced = rest.split("---")
    assert torch_loaded == "False"
    # quickstart's 6 runs x 2 batch sizes = 12 configurations, each over seeds 0 and 1
    assert "dataset digits · model mlp · 3 epochs" in mine and "12 configurations, 24 runs:" in mine
    assert "adam-bs32  adam lr=0.003 · batch 32 · seeds 0, 1" in mine  # lr from the run, name inherited
    assert "sgd-momentum-cosine-bs128  sgd lr=0.05 · cosine · batch 128" in mine
    assert "train.epochs" in broken  # a broken preset says why instead of breaking the screen
    assert "fetched (and shown for confirmation) when it starts" in remote  # and quickly: no network
    assert "6 runs:" in spaced


# ---------------------------------------------------------------- the CLI checks before the TUI


@pytest.fixture
def no_tui(monkeypatch: pytest.MonkeyPatch) -> None:
    import optlab.tui.app

    def refuse(**_: object) -> int:
        raise AssertionError("the TUI must not open on bad input")

    monkeypatch.setattr(optlab.tui.app, "launch", refuse)


@pytest.mark.usefixtures("no_tui")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tui", "no-such-preset"], "unknown preset 'no-such-preset'"),
        (["tui", "{tiny}", "--set", "train.epochs=abc"], "train.epochs"),
        (["tui", "{tiny}", "--set", "nope=1"], "unknown section 'nope'"),
        (["tui", "{tiny}", "--device", "tpu"], "--device 'tpu'"),
        (["tui", "{tiny}", "--out", "{busy}"], "not empty"),
        (["tui", "{tiny}", "--devices", "cpu,cpu"], "only the processes backend takes it"),
        (["tui", "{tiny}", "--backend", "processes", "--devices", "cpu,gpu"], "'gpu' is not a device"),
        (["view", "{tmp}/missing"], "not a run directory"),
    ],
)
def test_bad_input_is_an_error_before_the_tui_opens(
    args: list[str], message: str, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optlab.cli.main import app

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    monkeypatch.chdir(tmp_path)
    argv = [a.format(tiny=tiny, busy=busy, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "optlab: error:" in result.output and message in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_seeds_from_the_tui_command_reach_the_training_child(tiny: Path, tmp_path: Path) -> None:
    """`optlab tui PRESET --seeds N` trains what `optlab compare PRESET --seeds N` would."""
    from optlab.tui.process import TrainingProcess

    process = TrainingProcess(str(tiny), tmp_path / "run", "cpu", ["train.epochs=1"], seeds=2)
    process.start()
    assert process.wait(timeout=240) == 0, process.log_tail()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    names = {run["name"] for run in results["runs"]}
    groups = {run["config"]["group"] for run in results["runs"]}
    assert names == {f"{group}@s{seed}" for group in groups for seed in (0, 1)}


def test_backend_options_of_the_tui_command_reach_the_training_child(tiny: Path, tmp_path: Path) -> None:
    """`optlab tui PRESET --backend processes ...` trains where `optlab compare` would."""
    from optlab.cli.backend import Backend, Pace, Where, forwarded
    from optlab.tui.process import TrainingProcess
    from optlab.tui.widgets.tables import where_text

    args = forwarded(Where(Backend.processes, "cpu,cpu", 1, Pace.free, 0))
    process = TrainingProcess(str(tiny), tmp_path / "run", "cpu", ["train.epochs=1"], backend_args=args)
    process.start()
    assert process.wait(timeout=240) == 0, process.log_tail()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["device"] == "cpu,cpu"
    placements = [run["placement"] for run in results["runs"]]
    assert {p["backend"] for p in placements} == {"processes"}
    assert len({p["pid"] for p in placements}) == 2 and process.pid not in {p["pid"] for p in placements}
    assert [where_text(p) for p in placements] == ["cpu"] * len(placements)
    assert where_text({**placements[0], "host": "node-7"}) == "cpu@node-7"
    assert where_text(None) == "-"


# ---------------------------------------------------------------- documentation


def test_every_key_is_documented() -> None:
    from optlab.tui.app import OptlabApp
    from optlab.tui.screens.experiment import ExperimentScreen
    from optlab.tui.screens.quit import QuitScreen

    text = (Path(__file__).parents[2] / "docs" / "tui.md").read_text()
    for screen in (OptlabApp, ExperimentScreen, QuitScreen):
        for binding in screen.BINDINGS:
            key = binding.key.split(",")[0]  # type: ignore[union-attr]
            shown = {"space": "`space`", "escape": "Escape", "question_mark": "`?`"}.get(key, key)
            assert shown in text, f"key {key!r} ({binding.description}) missing from docs/tui.md"  # type: ignore[union-attr]


def test_redraw_pace_slows_down_over_the_cpu_budget_and_recovers() -> None:
    from optlab.tui.pacing import RedrawPace

    clock = {"wall": 0.0, "cpu": 0.0}
    pace = RedrawPace(fastest_s=1.0, slowest_s=4.0, budget=0.03, window_s=2.0,
                      clock=lambda: clock["wall"], cpu=lambda: clock["cpu"])

    def run(seconds: float, share: float) -> None:
        for _ in range(int(seconds * 4)):  # ticks of 0.25 s
            clock["wall"] += 0.25
            clock["cpu"] += 0.25 * share
            pace.observe()

    run(4, 0.02)  # within budget: once a second
    assert pace.every_s == 1.0 and pace.due(0.0, 1.0) and not pace.due(0.0, 0.9)
    run(20, 0.10)  # drawing costs 10% of a core: back off to the slowest
    assert pace.every_s == 4.0 and pace.share == pytest.approx(0.10)
    run(2, 0.02)  # between half the budget and the budget: stays
    assert pace.every_s == 4.0
    run(20, 0.005)  # idle: back to once a second
    assert pace.every_s == 1.0
