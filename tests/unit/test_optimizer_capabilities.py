"""What the trainer does for an optimizer's capabilities (train_eval, needs_closure,
lr_is_multiplier, create_graph), the checks of a plugin optimizer's arguments, and the
optimizers of the `optlab[optimizers]` extra."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

from optlab import builtins, registry
from optlab.builtins import PYTORCH_OPTIMIZER_EXTRA, PYTORCH_OPTIMIZERS
from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.registry import Registry, Source
from optlab.spec import OptimizerConfig
from optlab.training.checkpoint_policy import EVERY_EPOCH
from optlab.training.events import EpochEnded, Progress, RunEnded, RunStarted
from optlab.training.optim import build_optimizer, optimizer_kwargs_error
from optlab.training.runner import Runner

# What the fake schedule-free optimizer was last told, and what the spy model saw at each
# forward: (model in training mode?, optimizer mode at that moment).
MODE = ["none"]
FORWARDS: list[tuple[bool, str]] = []


# Every fake optimizer built, in order: the driver keeps no trainer, so a test reads the one
# its run trained with from here (cleared just before training starts).
BUILT: list[torch.optim.Optimizer] = []


class RecordingScheduleFree(torch.optim.SGD):
    """SGD with schedule-free's train()/eval() interface, recording each call."""

    def __init__(self, params: Any, lr: float = 0.01, momentum: float = 0.0) -> None:
        super().__init__(params, lr=lr, momentum=momentum)
        self.calls: list[str] = []
        BUILT.append(self)

    def train(self) -> None:
        self.calls.append("train")
        MODE[0] = "train"

    def eval(self) -> None:
        self.calls.append("eval")
        MODE[0] = "eval"


class Spy(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_in, 16), nn.ReLU(), nn.Linear(16, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        FORWARDS.append((self.training, MODE[0]))
        return self.body(x)


def spy_model(input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return Spy(math.prod(input_shape), n_outputs)


class TwoEvaluations(torch.optim.SGD):
    """Evaluates its closure twice per step, as a line search would; refuses to step without."""

    def __init__(self, params: Any, lr: float = 0.01) -> None:
        super().__init__(params, lr=lr)
        self.closure_losses: list[tuple[float, float]] = []
        BUILT.append(self)

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        if closure is None:
            raise TypeError("TwoEvaluations needs a closure")
        with torch.enable_grad():
            first, second = closure(), closure()
        super().step()
        self.closure_losses.append((float(first), float(second)))
        return first


class NeedsGraph(torch.optim.SGD):
    """Steps only on gradients that keep their graph (what a Hessian estimate differentiates)."""

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and not p.grad.requires_grad:
                    raise RuntimeError("the gradient has no graph: backward(create_graph=True) was not used")
        return super().step(closure)


class MatricesOnly(torch.optim.SGD):
    """Like Muon: 2-D parameters only."""

    def __init__(self, params: Any, lr: float = 0.01) -> None:
        super().__init__(params, lr=lr)
        if any(p.dim() != 2 for g in self.param_groups for p in g["params"]):
            raise ValueError("MatricesOnly takes 2-D parameters only")


def plugin_sgd(params: Any, lr: float, beta: float = 0.5) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=beta)


PLUGINS: dict[str, tuple[Callable[..., Any], dict[str, bool]]] = {
    "recording_sf": (RecordingScheduleFree, {"train_eval": True}),
    "two_evals": (TwoEvaluations, {"needs_closure": True}),
    "needs_graph": (NeedsGraph, {"create_graph": True}),
    "graphless": (NeedsGraph, {}),
    "multiplied": (torch.optim.SGD, {"lr_is_multiplier": True}),
    "matrices_plain": (MatricesOnly, {}),
    "matrices_only": (MatricesOnly, {"matrix_only": True}),
    "plugin_sgd": (plugin_sgd, {}),
}


@pytest.fixture(scope="module", autouse=True)
def _plugins() -> Iterator[None]:
    """The fakes, registered as a plugin file registers them; taken out again afterwards so
    other tests see only the real registries."""
    reg = registry.registry()
    registrar = reg.registrar(Source("file", path=__file__, sha256="0" * 64))
    for name, (factory, caps) in PLUGINS.items():
        registrar.optimizer(name, factory, **caps)
    registrar.model("spy", spy_model)
    # What `muon` looks like on a torch without torch.optim.Muon.
    registrar.builtin("optimizer", "absent", "torch.optim:NoSuchOptimizer", {"needs": "torch >= 99"})
    yield
    for name in [*PLUGINS, "absent"]:
        reg._entries["optimizer"].pop(name)
    reg._entries["model"].pop("spy")


PRESET = """
name = "caps"
[data]
dataset = "digits"
train_limit = 160
[model]
name = "{model}"
[train]
epochs = 2
batch_size = 32
seed = 0
[[runs]]
name = "a"
optimizer = {{ name = "{optimizer}", lr = {lr}{extra} }}
"""


class Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.checkpoint_modes: list[str] = []
        self.prediction_modes: list[str] = []

    def handle(self, event: Any) -> None:
        self.events.append(event)

    def checkpoint(self, run: str, state: dict[str, Any], is_best: bool) -> None:
        self.checkpoint_modes.append(MODE[0])

    def predictions(self, run: str, arrays: dict[str, Any]) -> None:
        self.prediction_modes.append(MODE[0])

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def _run(optimizer: str, lr: float = 0.05, model: str = "mlp", extra: str = "") -> tuple[Sink, Runner]:
    loaded = load_preset_text(PRESET.format(optimizer=optimizer, lr=lr, model=model, extra=extra))
    data = load_dataset(loaded.preset.data)
    specs = loaded.resolved_runs()  # checks the plugin model with a forward pass of its own
    sink = Sink()
    FORWARDS.clear()
    MODE[0] = "none"
    runner = Runner(specs, data, "cpu", [sink], checkpoints=EVERY_EPOCH)
    BUILT.clear()
    runner.run()
    return sink, runner


def _trained_with() -> torch.optim.Optimizer:
    """The optimizer the one run trained with (built once, after validation's trials)."""
    (optimizer,) = BUILT
    return optimizer


def test_a_schedule_free_optimizer_evaluates_checkpoints_and_predicts_in_eval_mode() -> None:
    sink, runner = _run("recording_sf", model="spy")
    ended = sink.of(RunEnded)[0]
    assert ended.status == "finished", ended.reason
    training = [mode for in_training, mode in FORWARDS if in_training]
    evaluating = [mode for in_training, mode in FORWARDS if not in_training]
    assert len(training) == 2 * 5 and set(training) == {"train"}  # 160 samples / 32, two epochs
    assert len(evaluating) >= 3 and set(evaluating) == {"eval"}  # validation twice, the test set
    assert sink.checkpoint_modes == ["eval", "eval"]
    assert sink.prediction_modes == ["eval"]
    calls = _trained_with().calls  # type: ignore[attr-defined]
    assert calls[0] == "train" and calls[-1] == "eval"


def test_a_closure_optimizer_gets_a_closure_and_its_gradient_evaluations_are_counted() -> None:
    sink, runner = _run("two_evals")
    ended = sink.of(RunEnded)[0]
    assert ended.status == "finished", ended.reason
    optimizer = _trained_with()
    assert len(optimizer.closure_losses) == ended.step == 10  # type: ignore[attr-defined]
    # The closure recomputes the loss (the same weights, so the same value, twice).
    assert all(first == pytest.approx(second) for first, second in optimizer.closure_losses)  # type: ignore[attr-defined]
    assert ended.grad_evals == 2 * ended.step
    progress = sink.of(Progress)
    assert [p.grad_evals for p in progress] == [2 * p.step for p in progress]


def test_lbfgs_trains_with_several_evaluations_per_step() -> None:
    sink, _ = _run("lbfgs", lr=1.0, extra=', max_iter = 3, line_search_fn = "strong_wolfe"')
    ended = sink.of(RunEnded)[0]
    assert ended.status == "finished", ended.reason
    assert ended.grad_evals > ended.step
    epochs = sink.of(EpochEnded)
    assert epochs[-1].train_loss < epochs[0].train_loss


def test_create_graph_reaches_backward() -> None:
    ended = _run("needs_graph")[0].of(RunEnded)[0]
    assert ended.status == "finished", ended.reason
    # The same optimizer without the capability is refused when the preset loads (trial step).
    assert "backward(create_graph=True) was not used" in (optimizer_kwargs_error(OptimizerConfig(name="graphless")) or "")


def test_lr_is_multiplier_is_noted_on_the_run() -> None:
    started = _run("multiplied")[0].of(RunStarted)[0]
    assert any("lr is a multiplier" in note for note in started.notes)


def test_a_plugin_optimizers_arguments_are_checked_against_its_signature() -> None:
    assert optimizer_kwargs_error(OptimizerConfig(name="plugin_sgd", betta=0.9)) == (
        "unknown argument 'betta' for optimizer 'plugin_sgd' (did you mean 'beta'?); allowed: beta"
    )
    assert optimizer_kwargs_error(OptimizerConfig(name="plugin_sgd", beta=0.9)) is None
    assert "must be in [0, 1)" in str(pytest.raises(ValueError, OptimizerConfig, name="plugin_sgd", momentum=2.0).value)


def test_the_trial_step_uses_a_matrix_and_a_vector() -> None:
    # Without matrix_only, the 1-D biases of the trial model reach the optimizer and it refuses.
    error = optimizer_kwargs_error(OptimizerConfig(name="matrices_plain")) or ""
    assert "invalid arguments for optimizer 'matrices_plain'" in error and "2-D parameters only" in error
    # With it, they go to the auxiliary AdamW, and the optimizer takes the hidden matrix.
    assert optimizer_kwargs_error(OptimizerConfig(name="matrices_only", aux_lr=1e-3)) is None
    opt = build_optimizer(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2)), OptimizerConfig(name="matrices_only"), "cpu")
    assert [type(o).__name__ for o in opt.optimizers] == ["MatricesOnly", "AdamW"]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- optlab[optimizers]

EXTRA = [name for name in PYTORCH_OPTIMIZERS if name in registry.names("optimizer", autoload=False)]


@pytest.mark.parametrize("name", list(PYTORCH_OPTIMIZERS))
def test_each_pytorch_optimizer_entry_builds_and_steps(name: str) -> None:
    if name not in EXTRA:
        pytest.skip("pytorch-optimizer is not installed")
    entry = registry.get("optimizer", name)
    cfg = OptimizerConfig(name=name, lr=1e-3)
    assert optimizer_kwargs_error(cfg) is None
    # Their **kwargs swallow unknown keys: optlab still refuses a typo.
    assert "unknown argument 'wieght_decay'" in (optimizer_kwargs_error(OptimizerConfig(name=name, wieght_decay=0.1)) or "")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    before = [p.detach().clone() for p in model.parameters()]
    opt = build_optimizer(model, cfg, "cpu")
    x = torch.randn(16, 4)
    if entry.has("train_eval"):
        opt.train()  # type: ignore[attr-defined]
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        model(x).square().mean().backward(create_graph=entry.has("create_graph"))
        opt.step()
    opt.zero_grad(set_to_none=True)
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.skipif("schedulefree_adamw" not in EXTRA, reason="pytorch-optimizer is not installed")
def test_the_extras_capabilities_are_what_their_classes_need() -> None:
    assert registry.get("optimizer", "schedulefree_adamw").has("train_eval")
    assert registry.get("optimizer", "prodigy").has("lr_is_multiplier")
    assert registry.get("optimizer", "sophiah").has("create_graph")
    assert not any(registry.get("optimizer", n).has("needs_closure") for n in EXTRA)
    # Schedule-free: eval() moves the weights to the average it evaluates, train() back.
    model = nn.Linear(3, 2)
    opt = build_optimizer(model, OptimizerConfig(name="schedulefree_adamw", lr=0.1), "cpu")
    opt.train()  # type: ignore[attr-defined]
    for _ in range(3):
        opt.zero_grad()
        model(torch.ones(4, 3)).square().mean().backward()
        opt.step()
    trained = model.weight.detach().clone()
    opt.eval()  # type: ignore[attr-defined]
    assert not torch.equal(model.weight, trained)
    # SophiaH estimates the Hessian from the gradients' graph: a plain backward cannot feed it.
    sophia = build_optimizer(model, OptimizerConfig(name="sophiah", lr=0.01), "cpu")
    sophia.zero_grad()
    model(torch.ones(4, 3)).square().mean().backward()
    with pytest.raises(RuntimeError):
        sophia.step()


def test_without_the_extra_its_names_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtins, "optimizers_extra_installed", lambda: False)
    fresh = Registry()
    builtins.register(fresh.registrar(registry.BUILTIN))
    assert "lion" not in fresh.names("optimizer", autoload=False)
    assert fresh.unknown_message("optimizer", "lion") == (
        f"optimizer 'lion' needs {PYTORCH_OPTIMIZER_EXTRA} (optlab never installs anything)"
    )
    message = fresh.unknown_message("optimizer", "prodigi")
    assert "did you mean 'prodigy'" in message and PYTORCH_OPTIMIZER_EXTRA in message


@pytest.mark.skipif("schedulefree_adamw" not in EXTRA, reason="pytorch-optimizer is not installed")
def test_schedule_free_batchnorm_statistics_describe_the_evaluated_weights() -> None:
    from optlab.training.trainer import Trainer, epoch_permutation

    text = PRESET.format(optimizer="schedulefree_adamw", lr=0.01, model="mlp", extra="").replace(
        '[model]\nname = "mlp"', '[model]\nname = "mlp"\nhidden = [16]\nbatchnorm = true')
    spec = load_preset_text(text).resolved_runs()[0]
    trainer = Trainer(spec, load_dataset(spec.data))
    while not trainer.done:
        trainer.advance()
    linear, norm = trainer.model[1], trainer.model[2]
    assert isinstance(norm, nn.BatchNorm1d) and norm.momentum == 0.1  # restored after the recompute
    # Recomputed with the averaged weights over the last epoch's batches, each batch's mean
    # counted once (not the running average gathered with the training weights).
    order = epoch_permutation(spec.seed, spec.epochs, trainer.n_train)
    with torch.no_grad():
        means = [linear(trainer.data.x_train[idx].flatten(1)).mean(0) for idx in order.split(spec.batch_size)]
    assert torch.allclose(norm.running_mean, torch.stack(means).mean(0), atol=1e-6)


def test_an_optimizer_class_the_installed_torch_lacks_is_a_clear_error_or_left_out() -> None:
    expected = (f"optimizer 'absent': the installed packages lack torch.optim.NoSuchOptimizer "
                f"(torch {torch.__version__}); it needs torch >= 99")
    assert optimizer_kwargs_error(OptimizerConfig(name="absent")) == expected
    text = PRESET.format(optimizer="sgd", lr=0.1, model="mlp", extra="") + (
        '[[runs]]\nname = "b"\noptional = true\noptimizer = { name = "absent", lr = 0.1 }\n')
    loaded = load_preset_text(text, "p.toml")
    assert [r.name for r in loaded.resolved_runs()] == ["a"]
    assert loaded.left_out == [f"p.toml: run 'b' left out (optional): {expected}"]


def test_several_evaluations_per_step_are_a_warning_under_every_results_table(tmp_path) -> None:
    """LBFGS had more compute per step than SGD: the console table, report.md, report.html and
    the TUI's end tables (through `comparison_warnings`) say so, naming it and not SGD."""
    from typer.testing import CliRunner

    from optlab.cli.main import app
    from optlab.runs.reports import comparison_warnings

    preset = tmp_path / "two.toml"
    preset.write_text(PRESET.format(optimizer="sgd", lr=0.05, model="mlp", extra="").replace('name = "a"', 'name = "sgd"')
                      + '[[runs]]\nname = "lbfgs"\noptimizer = { name = "lbfgs", lr = 1.0, max_iter = 3 }\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compare", str(preset), "--out", str(out), "-d", "cpu"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    per_step = {r["name"]: r["grad_evals"] / r["progress"]["step"] for r in results["runs"]}
    assert per_step["sgd"] == 1 and per_step["lbfgs"] > 1.05
    (warning,) = comparison_warnings(results)
    assert warning.startswith(f"gradient evaluations per step: lbfgs {per_step['lbfgs']:.1f} (the others 1)")
    assert "sgd " not in warning
    assert f"warning: {warning}" in " ".join(result.output.split())
    assert f"**Warning:** {warning}." in (out / "report.md").read_text()
    assert "gradient evaluations per step: lbfgs" in (out / "report.html").read_text()
