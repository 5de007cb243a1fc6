"""The devices pane: what it gathers (no terminal) and, with Pilot, the CPU of a local run."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from pathlib import Path
from typing import Any

import pytest
from tui.helpers import wait_for_the_end, wait_until

from optlab.tui.app import OptlabApp
from optlab.tui.devices import DeviceMonitor, GiB, Reading, devices_in_use, read_cpu, read_meminfo
from optlab.tui.screens.experiment import ExperimentScreen
from optlab.tui.widgets.devices import DevicesPane


def _run(name: str, host: str | None, device: str | None, gpu: str | None = None, **extra: Any) -> dict:
    placement = {"backend": "processes", "host": host, "device": device, "gpu": gpu, "pid": 7, **extra}
    return {"name": name, "placement": placement if device else None}


def test_devices_in_use_group_runs_by_host_and_device() -> None:
    runs = [_run("a", "box", "cuda:1", "NVIDIA H100"), _run("b", "box", "cpu"), _run("c", "box", "cuda:1", "NVIDIA H100"),
            _run("d", None, None), _run("e", "node2", "cuda:0", "NVIDIA A100", gpu_ids=[3])]
    found = devices_in_use(runs)
    assert [(d.host, d.device, d.gpu, d.gpu_index, d.runs) for d in found] == [
        ("box", "cuda:1", "NVIDIA H100", 1, ["a", "c"]),
        ("box", "cpu", None, None, ["b"]),
        ("node2", "cuda:0", "NVIDIA A100", 3, ["e"]),  # Ray's physical GPU id wins
    ]


def test_meminfo_and_cpu_reading(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       8388608 kB\nMemFree:  1000 kB\nMemAvailable:   2097152 kB\n")
    assert read_meminfo(meminfo) == (6 * GiB, 8 * GiB)
    (tmp_path / "bad").write_text("nonsense\n")
    assert read_meminfo(tmp_path / "bad") is None
    reading = read_cpu(meminfo)
    assert (reading.memory_used, reading.memory_total) == (6 * GiB, 8 * GiB)
    assert reading.utilisation is not None and reading.utilisation >= 0
    real = read_cpu()  # this machine's own /proc/meminfo
    assert real.memory_total and 0 < (real.memory_used or 0) < real.memory_total


def test_monitor_lines() -> None:
    monitor = DeviceMonitor(here="box", cpu=lambda: Reading(3 * GiB, 16 * GiB, 42.0))
    lines = monitor.lines([_run("a", "box", "cpu"), _run("b", "box", "cpu"), _run("c", "far", "cuda:0", "NVIDIA A100")])
    assert lines[0] == "cpu · RAM 3.0 / 16.0 GiB · load 42% · 2 runs: a, b"
    assert lines[1] == "cuda:0@far (NVIDIA A100) · on far: not readable from here · 1 run: c"
    assert monitor.lines([_run("a", None, None)]) == ["no device in use yet (runs not started)"]


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is not None, reason="nvidia-ml-py is installed")
def test_cuda_without_nvml_shows_the_placement_and_how_to_get_more() -> None:
    (line,) = DeviceMonitor(here="box").lines([_run("a", "box", "cuda:0", "NVIDIA H100")])
    assert line == "cuda:0 (NVIDIA H100) · pip install nvidia-ml-py for memory and utilisation · 1 run: a"


def test_pane_shows_the_cpu_of_a_local_run(tiny: Path, tmp_path: Path) -> None:
    asyncio.run(_pane(tiny, tmp_path))


async def _pane(tiny: Path, tmp_path: Path) -> None:
    app = OptlabApp(preset=str(tiny), out=tmp_path / "run", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        pane = screen.query_one("#devices", DevicesPane)
        assert not pane.display  # hidden until asked for: the layouts stay as they were
        await pilot.press("d")
        await wait_until(pilot, lambda: "RAM" in pane.text, what="the CPU in the devices pane")
        assert pane.display and pane.region.height > 0
        assert screen.chart("loss").region.height >= 4  # the chart keeps room at 80x24
        await wait_for_the_end(pilot, app, screen)
        await wait_until(pilot, lambda: "3 runs: sgd, adam, rms-bs32" in pane.text, what="every run on the CPU")
        (line,) = pane.text.splitlines()
        assert line.startswith("cpu · RAM ") and " GiB · load " in line
        host = socket.gethostname()
        assert all(r["placement"]["host"] == host for r in screen.state.doc["runs"])
        await pilot.press("d")
        await pilot.pause(0.1)
        assert not pane.display
