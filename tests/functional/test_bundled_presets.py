"""Every bundled preset runs, shortened; torchvision datasets are replaced by tiny files written
here and read through torchvision's own dataset classes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torchvision
from idx_fixtures import write_cifar10_batches, write_mnist_idx

from optlab.experiment import run_experiment
from optlab.preset.loader import bundled_dir, load_preset

BUNDLED = sorted(p.stem for p in bundled_dir().glob("*.toml"))
FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


class Statuses:
    def __init__(self) -> None:
        self.ended: dict[str, object] = {}

    def handle(self, event) -> None:
        if event.kind == "run_ended":
            self.ended[event.run] = event


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_preset_runs_shortened(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = load_preset(name).preset.data.dataset
    overrides = ["train.epochs=4"]
    if dataset in FOLDERS:
        write_mnist_idx(tmp_path, FOLDERS[dataset], n_train=400, n_test=100)
    elif dataset == "cifar10":
        write_cifar10_batches(tmp_path, n_train=300, n_test=100)
        monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    if dataset in FOLDERS or dataset == "cifar10":
        overrides += [f"data.root={tmp_path}", "data.download=false", "data.val_size=80"]
    loaded = load_preset(name, overrides)
    sink = Statuses()
    run_experiment(loaded, "cpu", [sink])
    assert set(sink.ended) == {r.name for r in loaded.resolved_runs()}
    for run, ended in sink.ended.items():
        assert ended.status in ("finished", "early_stopped"), (run, ended.status, ended.reason)
        assert ended.test is not None and ended.test["n"] > 0
