"""One experiment: a loaded preset, its dataset loaded once, and a runner over all its runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optlab.data.datasets import DatasetBundle, load_dataset
from optlab.preset.loader import LoadedPreset
from optlab.spec import ResolvedRun
from optlab.training.events import RunEnded
from optlab.training.runner import Control, Runner, resolve_device


def prepare(loaded: LoadedPreset, device: str = "auto") -> tuple[list[ResolvedRun], DatasetBundle, str]:
    """Resolve the runs and load the dataset once, on the device, for all of them."""
    device = resolve_device(device)
    specs = loaded.resolved_runs(device)
    data = load_dataset(loaded.preset.data, device)
    return specs, data, device


def run_experiment(
    loaded: LoadedPreset,
    device: str = "auto",
    sinks: Iterable[Any] = (),
    control: Control | None = None,
) -> dict[str, RunEnded]:
    specs, data, device = prepare(loaded, device)
    runner = Runner(specs, data, device, sinks, control, preset=loaded.preset.model_dump(mode="json"))
    return runner.run()
