"""Optimizers, learning-rate schedules and the cross-field run checks."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import pytest
import torch

from optlab import registry
from optlab.builtins import TORCH_OPTIMIZERS
from optlab.errors import PresetError
from optlab.preset.checks import check_run
from optlab.preset.loader import load_preset_text
from optlab.spec import OptimizerConfig, SchedulerConfig
from optlab.training.optim import build_optimizer, factory, optimizer_kwargs_error
from optlab.training.schedulers import LRSchedule, scheduler_kwargs_error

OPTIMIZER_NAMES = list(TORCH_OPTIMIZERS)
SCHEDULERS = registry.names("scheduler", autoload=False)
PER_BATCH = [n for n in SCHEDULERS if registry.get("scheduler", n).has("per_batch")]

LR_FOR = {"adadelta": 1.0, "adagrad": 0.1, "sgd": 0.1}


def test_every_registered_optimizer_has_a_torch_class() -> None:
    for name in registry.names("optimizer", autoload=False):
        assert issubclass(factory(name), torch.optim.Optimizer), name
    assert set(OPTIMIZER_NAMES) <= set(registry.names("optimizer", autoload=False))


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_every_optimizer_reduces_the_loss(name: str, task: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    model = torch.nn.Linear(4, 1 if task == "regression" else 3)
    if task == "regression":
        y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
        loss_fn = lambda: torch.nn.functional.mse_loss(model(x)[:, 0], y)  # noqa: E731
    else:
        y = x[:, :3].argmax(dim=1)
        loss_fn = lambda: torch.nn.functional.cross_entropy(model(x), y)  # noqa: E731
    opt = build_optimizer(model.parameters(), OptimizerConfig(name=name, lr=LR_FOR.get(name, 0.05)), "cpu")
    start = loss_fn().item()
    for _ in range(15):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < start


def test_build_optimizer_kwargs_and_device_choices() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(iter(params), OptimizerConfig(name="adam", lr=0.1, betas=[0.8, 0.95]), "cpu")
    group = opt.param_groups[0]
    assert group["betas"] == (0.8, 0.95) and group["lr"] == 0.1
    # On CPU too (issue 5): fused where torch has a CPU kernel (sgd, adam, adamw, adagrad), else foreach.
    assert group["fused"] is True
    assert build_optimizer(params, OptimizerConfig(name="rmsprop"), "cpu").param_groups[0]["foreach"] is True
    # On CUDA: fused where the class has it, else foreach (only the choice is checked here).
    fused = build_optimizer(params, OptimizerConfig(name="adamw"), "cuda")
    assert fused.param_groups[0]["fused"] is True
    foreach = build_optimizer(params, OptimizerConfig(name="rmsprop"), "cuda")
    assert foreach.param_groups[0]["foreach"] is True


def test_optimizer_kwargs_errors() -> None:
    assert optimizer_kwargs_error(OptimizerConfig(name="sgd", mometum=0.9)) == (
        "unknown argument 'mometum' for optimizer 'sgd' (did you mean 'momentum'?); "
        "allowed: momentum, dampening, weight_decay, nesterov, maximize"
    )
    error = optimizer_kwargs_error(OptimizerConfig(name="adam", fused=True)) or ""
    assert error.startswith("unknown argument 'fused'") and "amsgrad" in error and "foreach" not in error
    assert "nesterov" in (optimizer_kwargs_error(OptimizerConfig(name="sgd", nesterov=True)) or "")
    assert "dampening = 0" in (
        optimizer_kwargs_error(OptimizerConfig(name="sgd", nesterov=True, momentum=0.9, dampening=0.1)) or ""
    )
    assert "epsilon" in (optimizer_kwargs_error(OptimizerConfig(name="adam", eps=-1.0)) or "")
    assert optimizer_kwargs_error(OptimizerConfig(name="sgd", nesterov=True, momentum=0.9)) is None
    assert optimizer_kwargs_error(OptimizerConfig(name="adamw", betas=[0.9, 0.99], amsgrad=True)) is None


# ---------------------------------------------------------------------------- schedules


def _optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _drive(
    schedule: LRSchedule,
    opt: torch.optim.Optimizer,
    epochs: range,
    steps: int,
    val_losses: Sequence[float | None] | None = None,
) -> list[list[float]]:
    """The lr each batch used, per epoch."""
    out = []
    for epoch in epochs:
        lrs = []
        for _ in range(steps):
            lrs.append(schedule.lr())
            opt.step()
            schedule.after_batch()
        out.append(lrs)
        schedule.after_epoch(val_losses[epoch] if val_losses else 1.0 / (epoch + 1))
    return out


def _run(cfg: SchedulerConfig, epochs: int, steps: int, lr: float = 0.1, **kw) -> list[list[float]]:
    opt = _optimizer(lr)
    return _drive(LRSchedule(opt, cfg, epochs, steps), opt, range(epochs), steps, **kw)


@pytest.mark.parametrize("warmup", [0.0, 1.5])
@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_schedule_runs_with_finite_positive_lr(name: str, warmup: float) -> None:
    epochs, steps = 6, 5
    lrs = [
        lr for epoch in _run(SchedulerConfig(name=name, warmup_epochs=warmup), epochs, steps) for lr in epoch
    ]
    assert len(lrs) == epochs * steps
    assert all(math.isfinite(lr) and 0 < lr <= 0.1 + 1e-12 for lr in lrs), lrs
    if warmup:
        assert lrs[0] == pytest.approx(0.01)
    assert scheduler_kwargs_error(SchedulerConfig(name=name, warmup_epochs=warmup), epochs) is None


def test_step_decays_at_the_right_epochs() -> None:
    per_epoch = [e[0] for e in _run(SchedulerConfig(name="step", step_size=2, gamma=0.5), 6, 3)]
    assert per_epoch == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    default = [e[0] for e in _run(SchedulerConfig(name="step"), 9, 2)]  # step_size 9 // 3 = 3
    assert default == pytest.approx([0.1] * 3 + [0.01] * 3 + [0.001] * 3)


def test_multistep_defaults() -> None:
    per_epoch = [e[0] for e in _run(SchedulerConfig(name="multistep"), 8, 2)]  # milestones 4, 6
    assert per_epoch == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_warmup_rises_linearly_then_hands_over() -> None:
    cfg = SchedulerConfig(name="constant", warmup_epochs=1, warmup_start_factor=0.1)
    lrs = _run(cfg, 3, 4)
    assert lrs[0] == pytest.approx([0.01, 0.0325, 0.055, 0.0775])
    assert lrs[1] == lrs[2] == pytest.approx([0.1] * 4)

    # Per-epoch schedulers start after the epochs warm-up touches: 1.5 -> epochs 1-2.
    cos = _run(SchedulerConfig(name="cosine", warmup_epochs=1.5), 6, 4)  # main: 4 epochs
    assert cos[1][2:] == pytest.approx([0.1, 0.1])
    assert [e[0] for e in cos[2:]] == pytest.approx(
        [0.1 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]
    )


def test_per_batch_schedules_change_within_an_epoch() -> None:
    for name in PER_BATCH:
        lrs = _run(SchedulerConfig(name=name), 4, 6)
        assert len(set(lrs[1])) > 1, name
    for name in ("step", "cosine", "exponential", "linear"):
        lrs = _run(SchedulerConfig(name=name), 4, 6)
        assert all(len(set(epoch)) == 1 for epoch in lrs), name
        assert lrs[0][0] == pytest.approx(0.1) and lrs[-1][0] < 0.1


def test_onecycle_and_cyclic_shapes() -> None:
    flat = [lr for e in _run(SchedulerConfig(name="onecycle"), 5, 10) for lr in e]
    assert flat[0] == pytest.approx(0.1 / 25)
    assert max(flat) == pytest.approx(0.1, rel=1e-3) and flat.index(max(flat)) == 14  # 0.3 * 50 - 1
    assert flat[-1] < flat[0] / 100
    cyc = [lr for e in _run(SchedulerConfig(name="cyclic"), 4, 5) for lr in e]
    assert cyc[0] == pytest.approx(0.01) and cyc[5] == pytest.approx(0.1) and cyc[10] == pytest.approx(0.01)


def test_plateau_reduces_after_patience_flat_epochs() -> None:
    flat = [1.0] * 8
    per_epoch = [e[0] for e in _run(SchedulerConfig(name="plateau", patience=2), 8, 2, val_losses=flat)]
    # Epoch 1 sets the best; epochs 2-4 do not improve: the 3rd bad one (> patience) cuts the lr.
    assert per_epoch == pytest.approx([0.1] * 4 + [0.01] * 3 + [0.001])
    improving = [1.0 / (e + 1) for e in range(8)]
    per_epoch = [e[0] for e in _run(SchedulerConfig(name="plateau"), 8, 2, val_losses=improving)]
    assert per_epoch == pytest.approx([0.1] * 8)
    no_val = [e[0] for e in _run(SchedulerConfig(name="plateau"), 8, 2, val_losses=[None] * 8)]
    assert no_val == pytest.approx([0.1] * 8)


@pytest.mark.parametrize("warmup", [0.0, 1.5])
@pytest.mark.parametrize("name", SCHEDULERS)
def test_state_dict_resume_is_exact(name: str, warmup: float) -> None:
    cfg = SchedulerConfig(name=name, warmup_epochs=warmup)
    epochs, steps, cut = 8, 5, 3
    val = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8]
    reference = _run(cfg, epochs, steps, val_losses=val)

    opt = _optimizer()
    schedule = LRSchedule(opt, cfg, epochs, steps)
    _drive(schedule, opt, range(cut), steps, val)
    for _ in range(2):  # also mid-epoch, not only at an epoch end
        opt.step()
        schedule.after_batch()
    buffer = io.BytesIO()
    torch.save({"schedule": schedule.state_dict(), "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    for load_optimizer in (False, True):
        fresh_opt = _optimizer()
        fresh = LRSchedule(fresh_opt, cfg, epochs, steps)
        if load_optimizer:
            fresh_opt.load_state_dict(state["optimizer"])
        fresh.load_state_dict(state["schedule"])
        rest = [fresh.lr()]
        for _ in range(steps - 3):
            fresh_opt.step()
            fresh.after_batch()
            rest.append(fresh.lr())
        fresh_opt.step()
        fresh.after_batch()
        fresh.after_epoch(val[cut])
        later = _drive(fresh, fresh_opt, range(cut + 1, epochs), steps, val)
        assert rest == reference[cut][2:]
        assert later == reference[cut + 1 :]


def test_load_state_dict_of_another_scheduler_fails() -> None:
    state = LRSchedule(_optimizer(), SchedulerConfig(name="step"), 4, 2).state_dict()
    with pytest.raises(ValueError, match="'step'"):
        LRSchedule(_optimizer(), SchedulerConfig(name="cosine"), 4, 2).load_state_dict(state)


def test_scheduler_kwargs_errors() -> None:
    assert scheduler_kwargs_error(SchedulerConfig(name="step", gama=0.5), 10) == (
        "unknown argument 'gama' for scheduler 'step' (did you mean 'gamma'?); allowed: step_size, gamma"
    )
    assert "allowed: none" in (scheduler_kwargs_error(SchedulerConfig(name="constant", gamma=0.5), 10) or "")
    assert "warmup_epochs = 3" in (
        scheduler_kwargs_error(SchedulerConfig(name="cosine", warmup_epochs=3), 3) or ""
    )
    assert "sets 'total_steps' itself" in (
        scheduler_kwargs_error(SchedulerConfig(name="onecycle", total_steps=10), 10) or ""
    )
    # The preset schema refuses T_0 = 0 first; built unvalidated, torch's own check still answers.
    no_t0 = SchedulerConfig.model_construct(name="cosine_warm_restarts", T_0=0)
    assert "T_0" in (scheduler_kwargs_error(no_t0, 10) or "")
    assert "learning rate" in (
        scheduler_kwargs_error(SchedulerConfig(name="exponential", gamma=-0.5), 10) or ""
    )
    momentum = SchedulerConfig(name="cyclic", cycle_momentum=True)
    assert "momentum" in (scheduler_kwargs_error(momentum, 5, OptimizerConfig(name="adagrad")) or "")
    assert scheduler_kwargs_error(momentum, 5, OptimizerConfig(name="sgd", momentum=0.9)) is None
    assert scheduler_kwargs_error(SchedulerConfig(name="linear", start_factor=0.1, end_factor=1.0), 5) is None


# ---------------------------------------------------------------------------- check_run


BASE = """
[data]
dataset = "{dataset}"
{data}
[model]
name = "{model}"
[train]
epochs = 3
batch_size = {batch_size}
loss = "{loss}"
{train}
[[runs]]
name = "a"
"""


def _problem(
    dataset: str = "digits",
    model: str = "mlp",
    batch_size: int = 32,
    loss: str = "cross_entropy",
    data: str = "",
    train: str = "",
) -> str | None:
    text = BASE.format(dataset=dataset, model=model, batch_size=batch_size, loss=loss, data=data, train=train)
    try:
        runs = load_preset_text(text, "test.toml").resolved_runs()
    except PresetError as exc:
        message = str(exc)
        assert message.startswith("test.toml: runs (a): "), message
        return message.removeprefix("test.toml: runs (a): ")
    assert check_run(runs[0]) is None
    return None


def test_check_run_accepts_a_sound_run() -> None:
    assert _problem() is None
    assert _problem(dataset="diabetes", loss="smooth_l1", train="clip_grad_norm = 1.0") is None
    assert _problem(dataset="breast-cancer", loss="bce_with_logits") is None


def test_check_run_catches_each_problem() -> None:
    cases = {
        "did you mean 'momentum'": dict(train='optimizer = {name = "sgd", lr = 0.1, mometum = 0.9}'),
        "for scheduler 'step' (did you mean 'gamma'": dict(train='scheduler = {name = "step", gama = 0.5}'),
        "loss 'cross_entropy' does not fit the regression dataset 'diabetes'; allowed: mse, l1, smooth_l1": dict(
            dataset="diabetes"
        ),
        "label_smoothing = 0.1 works only with the cross_entropy loss": dict(
            dataset="diabetes", loss="mse", train="label_smoothing = 0.1"
        ),
        "lenet needs images of at least 28x28; dataset input is 1x8x8": dict(model="lenet"),
        "model 'cnn' needs image input": dict(dataset="breast-cancer", model="cnn"),
        "either clip_grad_norm or clip_grad_value": dict(train="clip_grad_norm = 1.0\nclip_grad_value = 0.5"),
        "early_stopping needs a validation split": dict(
            data="val_fraction = 0.0", train="early_stopping = {patience = 2}"
        ),
        "'plateau' steps on the validation loss": dict(
            data="val_size = 0", train='scheduler = {name = "plateau"}'
        ),
        "batch_size 5000 is larger than the training split (1150 samples)": dict(batch_size=5000),
        "batch_size 64 is larger than the training split (50 samples)": dict(
            batch_size=64, data="train_limit = 50"
        ),
        "data.val_size = 2000 leaves no training data": dict(data="val_size = 2000"),
        "leaves no epochs for the scheduler (the run has 3 epochs): set scheduler.warmup_epochs below 3, "
        "or train.epochs to at least 4": dict(train='scheduler = {name = "cosine", warmup_epochs = 3}'),
        "needs a classification dataset": dict(
            dataset="diabetes", loss="mse", train='early_stopping = {metric = "val_accuracy"}'
        ),
    }
    for expected, kwargs in cases.items():
        problem = _problem(**kwargs)
        assert problem is not None and expected in problem, (expected, problem)


@pytest.mark.parametrize("warmup", [0.0, 1.5])
@pytest.mark.parametrize("name", SCHEDULERS)
def test_rates_are_the_batches_lr_then_after_batch(name: str, warmup: float) -> None:
    # A fused group takes an interval's rates at once: the same rates, the schedule left where
    # the batch-by-batch calls leave it (its state is what checkpoints save).
    epochs, steps, intervals = 6, 5, [2, 2, 1]
    cfg = SchedulerConfig(name=name, warmup_epochs=warmup)
    opt_a, opt_b = _optimizer(), _optimizer()
    one, many = LRSchedule(opt_a, cfg, epochs, steps), LRSchedule(opt_b, cfg, epochs, steps)
    for epoch in range(epochs):
        for n in intervals:
            expected = []
            for _ in range(n):
                expected.append(one.lr())
                opt_a.step()
                one.after_batch()
            opt_b.step()
            assert many.rates(n) == expected, (epoch, n)
        one.after_epoch(1.0 / (epoch + 1))
        many.after_epoch(1.0 / (epoch + 1))
    assert many.state_dict() == one.state_dict()
