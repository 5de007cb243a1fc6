"""A plugin's own vectorized update (`registry.optimizer(..., vectorized=fn)`): its runs fuse
beside optlab's families, match their unfused training within the fused tolerance, and write
checkpoints in their own optimizer's format; `fuses` without an update, and a `fuses` model
that cannot be stacked, are refused or trained unfused with a note."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from optlab import registry
from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.training.events import EpochEnded, Progress, RunEnded, RunStarted
from optlab.training.executor import LocalExecutor
from optlab.training.fused.host import FusedLocalExecutor
from optlab.training.runner import Runner

PLUGIN = '''
import torch


class DecaySGD(torch.optim.Optimizer):
    """Heavy-ball SGD whose rate decays as lr / (1 + decay * step)."""

    def __init__(self, params, lr=0.05, momentum=0.9, decay=0.01):
        super().__init__(params, dict(lr=lr, momentum=momentum, decay=decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["momentum_buffer"] = torch.zeros_like(p)
                state["step"] += 1
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(p.grad)
                p.sub_(group["lr"] / (1 + group["decay"] * state["step"].item()) * buf)


def decay_sgd_vectorized(p, g, state, hyper, lr, step):
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = torch.zeros_like(p)
    buf = state["momentum_buffer"]
    buf.mul_(hyper("momentum")).add_(g)
    p.sub_(lr / (1 + hyper("decay") * step) * buf)


class NotSequential(torch.nn.Module):
    def __init__(self, input_shape, n_outputs):
        super().__init__()
        self.linear = torch.nn.Linear(int(torch.tensor(input_shape).prod()), n_outputs)

    def forward(self, x):
        return self.linear(x.flatten(1))


def register(registry):
    registry.optimizer("decaysgd", DecaySGD, vectorized=decay_sgd_vectorized)
    registry.model("flat", NotSequential, fuses=True)
'''

BASE = """
name = "t"
[data]
dataset = "digits"
train_limit = 400
[model]
name = "{model}"
{hidden}
[train]
epochs = 2
batch_size = 32
seed = 0
[[runs]]
name = "sgd"
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}
[[runs]]
name = "decay-a"
optimizer = {{ name = "decaysgd", lr = 0.05 }}
[[runs]]
name = "decay-b"
optimizer = {{ name = "decaysgd", lr = 0.1, momentum = 0.8, decay = 0.05 }}
"""


class Collect:
    def __init__(self) -> None:
        self.events: list = []
        self.states: dict[str, dict] = {}

    def handle(self, event) -> None:
        self.events.append(event)

    def checkpoint(self, run: str, state: dict, is_best: bool) -> None:
        self.states[run] = state

    def of(self, kind: type, run: str) -> list:
        return [e for e in self.events if isinstance(e, kind) and e.run == run]


@pytest.fixture
def plugged(fresh_registry: registry.Registry, tmp_path: Path) -> registry.Registry:
    (tmp_path / "decaysgd.py").write_text(PLUGIN)
    fresh_registry.load_plugin(str(tmp_path / "decaysgd.py"))
    return fresh_registry


def train(fuse: bool, model: str = "mlp") -> Collect:
    torch.set_num_threads(1)
    loaded = load_preset_text(BASE.format(model=model, hidden="hidden = [32]" if model == "mlp" else ""))
    specs = loaded.resolved_runs()
    data = load_dataset(loaded.preset.data)
    executor = FusedLocalExecutor(data, "cpu", specs) if fuse else LocalExecutor(data, "cpu")
    sink = Collect()
    Runner(specs, data, "cpu", [sink], executor=executor).run()
    return sink


def test_a_plugin_update_fuses_beside_sgd_and_matches_unfused(plugged: registry.Registry) -> None:
    plain, fused = train(False), train(True)
    names = ["sgd", "decay-a", "decay-b"]
    for name in names:
        assert fused.of(RunStarted, name)[0].placement["fused"] == {"group": "fuse-1", "size": 3}
        pa, pb = plain.of(Progress, name), fused.of(Progress, name)
        assert [p.step for p in pa] == [p.step for p in pb]
        for x, y in zip(pa, pb, strict=True):
            assert math.isclose(x.train_loss, y.train_loss, rel_tol=1e-4), name
        for x, y in zip(plain.of(EpochEnded, name), fused.of(EpochEnded, name), strict=True):
            assert math.isclose(x.val_loss, y.val_loss, rel_tol=1e-4), name
        assert fused.of(RunEnded, name)[0].status == "finished"
        # The checkpoint is the plugin optimizer's own format (its state names and `step`).
        a, b = plain.states[name]["optimizer"]["state"], fused.states[name]["optimizer"]["state"]
        assert a.keys() == b.keys()
        for index, entry in a.items():
            assert entry.keys() == b[index].keys(), name
            for key, value in entry.items():
                torch.testing.assert_close(b[index][key].float(), value.float(), rtol=1e-3, atol=1e-5)


def test_a_plugin_model_that_cannot_stack_trains_unfused_with_a_note(plugged: registry.Registry) -> None:
    fused = train(True, model="flat")
    for name in ("sgd", "decay-a", "decay-b"):
        started = fused.of(RunStarted, name)[0]
        assert "fused" not in started.placement
        assert any("not fused: model 'flat' cannot be stacked" in note for note in started.notes), started.notes
        assert fused.of(RunEnded, name)[0].status == "finished"


def test_fuses_without_a_vectorized_update_is_refused(fresh_registry: registry.Registry, tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "import torch\ndef register(registry):\n    registry.optimizer('mine', torch.optim.SGD, fuses=True)\n")
    with pytest.raises(registry.PluginError, match=r"optimizer 'mine': fuses=True needs vectorized=FN"):
        fresh_registry.load_plugin(str(tmp_path / "bad.py"))


def test_vectorized_with_a_capability_a_group_cannot_honour_is_refused(
    fresh_registry: registry.Registry, tmp_path: Path
) -> None:
    (tmp_path / "muonish.py").write_text(
        "import torch\ndef step(p, g, state, hyper, lr, step):\n    p.sub_(lr * g)\n"
        "def register(registry):\n    registry.optimizer('muonish', torch.optim.SGD, vectorized=step, matrix_only=True)\n")
    with pytest.raises(registry.PluginError, match=r"'muonish': vectorized cannot be combined with matrix_only"):
        fresh_registry.load_plugin(str(tmp_path / "muonish.py"))


def test_a_vectorized_update_keeping_a_wrong_state_fails_its_group_with_one_line(
    fresh_registry: registry.Registry, tmp_path: Path
) -> None:
    # Its state a per-run count instead of a tensor shaped like p (the contract: docs/plugins.md).
    bad = PLUGIN.replace('''    if "momentum_buffer" not in state:
        state["momentum_buffer"] = torch.zeros_like(p)
    buf = state["momentum_buffer"]
    buf.mul_(hyper("momentum")).add_(g)
    p.sub_(lr / (1 + hyper("decay") * step) * buf)''', '''    state["momentum_buffer"] = torch.zeros(1)
    p.sub_(lr * g)''')
    assert bad != PLUGIN
    (tmp_path / "decaysgd.py").write_text(bad)
    fresh_registry.load_plugin(str(tmp_path / "decaysgd.py"))
    fused = train(True)
    for name in ("sgd", "decay-a", "decay-b"):  # the group fails together, each with the one reason
        ended = fused.of(RunEnded, name)[0]
        assert ended.status == "failed"
        assert "'decaysgd': its vectorized update kept state 'momentum_buffer' as (1,)" in ended.reason
