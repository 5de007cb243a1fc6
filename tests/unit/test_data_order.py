"""The data layer keeps the file's order: `tutorial-fashion-mnist` trains exactly as the PyTorch
tutorial's own loop does on the same IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset
from optlab.spec import DataConfig
from optlab.training.trainer import Trainer
from tests.idx_fixtures import write_mnist_idx


@pytest.mark.parametrize("name", ["digits", "breast-cancer", "diabetes"])
def test_each_split_keeps_the_files_relative_order(name: str) -> None:
    b = load_dataset(DataConfig(dataset=name))
    for key in ("train", "val", "test"):
        idx = b.split_indices[key]
        assert len(idx) > 0 and np.all(np.diff(idx) > 0), key
    # the split is still a seeded, random choice: not simply the first samples
    assert b.split_indices["test"][-1] > len(b.split_indices["test"])


def test_without_a_validation_split_the_training_set_is_the_file(tmp_path: Path) -> None:
    write_mnist_idx(tmp_path, "FashionMNIST", n_train=120, n_test=30)
    b = load_dataset(DataConfig(dataset="fashion-mnist", root=str(tmp_path), download=False, val_fraction=0.0))
    assert b.split_indices["train"].tolist() == list(range(120))
    held = load_dataset(DataConfig(dataset="fashion-mnist", root=str(tmp_path), download=False))
    assert np.all(np.diff(held.split_indices["train"]) > 0) and np.all(np.diff(held.split_indices["val"]) > 0)
    assert len(held.split_indices["train"]) == 96


class TutorialNetwork(nn.Module):
    """The tutorial's NeuralNetwork, as written there."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_relu_stack(self.flatten(x))


def test_tutorial_recipe_trains_like_the_tutorials_own_loop(tmp_path: Path) -> None:
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import ToTensor

    write_mnist_idx(tmp_path, "FashionMNIST", n_train=600, n_test=64)  # 9 full batches and one of 24
    loaded = load_preset(
        "tutorial-fashion-mnist", [f"data.root={tmp_path}", "data.download=false", "train.epochs=1"]
    )
    spec = loaded.resolved_runs("cpu")[0]
    trainer = Trainer(spec, load_dataset(loaded.preset.data))
    while not trainer.done:
        trainer.advance()
    assert trainer.epoch == 1 and trainer.step == 10

    # The tutorial, verbatim but for the root, the download and one epoch.
    training_data = datasets.FashionMNIST(root=str(tmp_path), train=True, download=False, transform=ToTensor())
    train_dataloader = DataLoader(training_data, batch_size=64)
    torch.manual_seed(spec.seed)  # optlab seeds the initial weights this way
    model = TutorialNetwork()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    ours = [p.detach() for p in trainer.model.parameters()]
    theirs_before = [p.detach().clone() for p in model.parameters()]
    model.train()
    for x, y in train_dataloader:
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    assert [t.shape for t in ours] == [t.shape for t in model.parameters()]
    moved = max(float((a - b).abs().max()) for a, b in zip([p.detach() for p in model.parameters()], theirs_before, strict=True))
    assert moved > 1e-4  # training happened, so equal weights mean equal steps
    diff = max(float((a - b).abs().max()) for a, b in zip(ours, [p.detach() for p in model.parameters()], strict=True))
    assert diff < 1e-6
