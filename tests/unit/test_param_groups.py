"""Parameter groups: weight_decay_on, Muon with its auxiliary AdamW behind one optimizer, and
how the LR schedule, checkpoints and resume treat a run with two optimizers."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from optlab import registry
from optlab.data.datasets import load_dataset
from optlab.errors import OptlabError, PresetError
from optlab.preset.loader import load_preset_text
from optlab.spec import OptimizerConfig, SchedulerConfig
from optlab.training.events import EpochEnded
from optlab.training.optim import build_optimizer, optimizer_kwargs_error
from optlab.training.param_groups import CompositeOptimizer
from optlab.training.schedulers import LRSchedule
from optlab.training.trainer import Trainer

needs_muon = pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="this torch has no torch.optim.Muon")

PRESET = """
name = "t"
[data]
dataset = "digits"
train_limit = 300
[model]
name = "mlp"
hidden = [32, 16]
[train]
epochs = 2
batch_size = 32
seed = 0
[[runs]]
name = "a"
optimizer = {optimizer}
scheduler = {scheduler}
"""


def _trainer(optimizer: str, scheduler: str = '{ name = "constant" }', epochs: int = 2) -> Trainer:
    loaded = load_preset_text(PRESET.format(optimizer=optimizer, scheduler=scheduler).replace(
        "epochs = 2", f"epochs = {epochs}"))
    spec = loaded.resolved_runs()[0]
    return Trainer(spec, load_dataset(spec.data))


def _train(trainer: Trainer, until_epoch: int | None = None) -> list[EpochEnded]:
    """Train, and return the epochs it reported."""
    epochs: list[EpochEnded] = []
    while not trainer.done and (until_epoch is None or trainer.epoch < until_epoch):
        epochs += [e for e in trainer.advance() if isinstance(e, EpochEnded)]
    return epochs


def _timeless(epochs: list[EpochEnded]) -> list[dict[str, object]]:
    return [{k: v for k, v in e.to_dict().items() if k not in ("epoch_s", "elapsed_s")} for e in epochs]


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))


@pytest.mark.parametrize("decay_on", ["all", "matrices"])
def test_weight_decay_on_matrices_leaves_biases_and_norms_undecayed(decay_on: str) -> None:
    model = _net()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    cfg = OptimizerConfig(name="adamw", lr=0.1, weight_decay=0.5, weight_decay_on=decay_on)
    opt = build_optimizer(model, cfg, "cpu")
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # a zero gradient: AdamW moves a parameter only by its decay
    opt.step()
    for name, p in model.named_parameters():
        decayed = decay_on == "all" or p.dim() >= 2
        expected = 1.0 - 0.1 * 0.5 if decayed else 1.0
        assert torch.allclose(p, torch.full_like(p, expected)), (name, p)
    if decay_on == "matrices":
        assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
        assert all(p.dim() >= 2 for p in opt.param_groups[0]["params"])
        assert all(p.dim() < 2 for p in opt.param_groups[1]["params"])


def test_weight_decay_on_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown weight_decay_on 'bias'; allowed: all, matrices"):
        OptimizerConfig(name="adamw", weight_decay_on="bias")
    assert "has none" in (optimizer_kwargs_error(OptimizerConfig(name="lbfgs", weight_decay_on="matrices")) or "")
    # Written only when set: specs and checkpoints from before the field compare equal.
    assert OptimizerConfig(name="adamw").model_dump() == {"name": "adamw", "lr": 0.01}
    kept = OptimizerConfig(name="adamw", weight_decay_on="matrices").model_dump_json()
    assert OptimizerConfig.model_validate_json(kept).weight_decay_on == "matrices"


class Mixed(nn.Module):
    """An embedding, a conv kernel, two hidden matrices, a norm and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.conv = nn.Conv2d(1, 2, 3)
        self.hidden = nn.Linear(4, 6)
        self.norm = nn.LayerNorm(6)
        self.hidden2 = nn.Linear(6, 6, bias=False)
        self.head = nn.Linear(6, 3)


@needs_muon
@pytest.mark.parametrize("aux_head", [True, False])
def test_muon_takes_the_hidden_matrices_and_adamw_the_rest(aux_head: bool) -> None:
    model = Mixed()
    opt = build_optimizer(model, OptimizerConfig(name="muon", lr=0.02, aux_head=aux_head), "cpu")
    assert isinstance(opt, CompositeOptimizer) and opt.names == ["muon", "adamw"]
    muon, adamw = opt.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    on_muon = [names[id(p)] for g in muon.param_groups for p in g["params"]]
    on_adamw = sorted(names[id(p)] for g in adamw.param_groups for p in g["params"])
    expected = ["hidden.weight", "hidden2.weight"] + ([] if aux_head else ["head.weight"])
    assert on_muon == expected
    assert on_adamw == sorted(set(names.values()) - set(expected))
    assert muon.param_groups[0]["lr"] == 0.02
    assert adamw.param_groups[0]["lr"] == 3e-4 and adamw.param_groups[0]["betas"] == (0.9, 0.95)
    assert opt.param_groups == muon.param_groups + adamw.param_groups


@needs_muon
def test_muon_options_and_their_errors() -> None:
    cfg = OptimizerConfig(name="muon", lr=0.02, aux_lr=1e-3, aux_betas=[0.8, 0.9], aux_weight_decay=0.1,
                          weight_decay_on="matrices")
    assert optimizer_kwargs_error(cfg) is None
    adamw = build_optimizer(Mixed(), cfg, "cpu").optimizers[1]  # type: ignore[attr-defined]
    # Embedding, conv kernel and head decayed at aux_weight_decay; biases and norms not.
    assert [(g["lr"], g["betas"], g["weight_decay"]) for g in adamw.param_groups] == [
        (1e-3, (0.8, 0.9), 0.1), (1e-3, (0.8, 0.9), 0.0)
    ]
    assert "trains every parameter itself" in (optimizer_kwargs_error(OptimizerConfig(name="adam", aux_lr=0.1)) or "")
    with pytest.raises(ValueError, match="aux_betas must be two numbers"):
        OptimizerConfig(name="muon", aux_betas=[0.9, 0.9, 0.9])
    with pytest.raises(ValueError, match="aux_lr must be > 0"):
        OptimizerConfig(name="muon", aux_lr=0)
    with pytest.raises(OptlabError, match="besides the output layer"):
        build_optimizer(nn.Linear(3, 2), OptimizerConfig(name="muon"), "cpu")


@needs_muon
def test_the_schedule_drives_every_sub_optimizer_from_its_own_base_lr() -> None:
    opt = build_optimizer(Mixed(), OptimizerConfig(name="muon", lr=0.02, aux_lr=1e-3), "cpu")
    bases = [g["lr"] for g in opt.param_groups]
    schedule = LRSchedule(opt, SchedulerConfig(name="cosine", warmup_epochs=1), epochs=4, steps_per_epoch=3)
    seen = set()
    for _ in range(4):
        for _ in range(3):
            opt.step()
            schedule.after_batch()
            ratios = [g["lr"] / base for g, base in zip(opt.param_groups, bases, strict=True)]
            assert max(ratios) - min(ratios) < 1e-12
            seen.add(round(ratios[0], 9))
        schedule.after_epoch(None)
    assert len(seen) > 4  # the lr did move: warm-up, then cosine


@needs_muon
def test_muon_trains_digits_with_an_auxiliary_adamw() -> None:
    trainer = _trainer('{ name = "muon", lr = 0.02 }', epochs=2)
    opt = trainer.optimizer
    assert isinstance(opt, CompositeOptimizer)
    shapes = [tuple(p.shape) for g in opt.optimizers[0].param_groups for p in g["params"]]
    assert shapes == [(32, 64), (16, 32)]  # the hidden layers' weights; the head (10, 16) is AdamW's
    epochs = _train(trainer)
    assert trainer.ended is not None and trainer.ended.status == "finished"
    assert epochs[-1].train_loss < epochs[0].train_loss < 2.3
    assert trainer.ended.test is not None and trainer.ended.test["accuracy"] > 0.3  # chance is 0.1


@pytest.mark.parametrize(
    "optimizer",
    [
        pytest.param('{ name = "muon", lr = 0.02, aux_lr = 1e-3 }', marks=needs_muon, id="muon"),
        # Checkpoints hold its evaluated (averaged) weights; training switches back either way.
        pytest.param('{ name = "schedulefree_adamw", lr = 3e-3 }', id="schedulefree", marks=pytest.mark.skipif(
            not registry.registry().find("optimizer", "schedulefree_adamw"), reason="pytorch-optimizer is not installed")),
    ],
)
def test_a_resumed_run_equals_the_uninterrupted_one(optimizer: str) -> None:
    scheduler = '{ name = "cosine", warmup_epochs = 1 }'
    whole = _trainer(optimizer, scheduler, epochs=3)
    whole_epochs = _train(whole)

    first = _trainer(optimizer, scheduler, epochs=3)
    _train(first, until_epoch=1)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # what a checkpoint file gives back
    resumed = _trainer(optimizer, scheduler, epochs=3)
    resumed.load_state_dict(state)
    resumed_epochs = _train(resumed)

    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert _timeless(resumed_epochs) == _timeless(whole_epochs)[1:]
    assert whole.ended is not None and resumed.ended is not None
    assert whole.ended.test == resumed.ended.test


@needs_muon
def test_composite_state_belongs_to_its_optimizers() -> None:
    opt = build_optimizer(Mixed(), OptimizerConfig(name="muon"), "cpu")
    state = opt.state_dict()
    assert state["composite"] == ["muon", "adamw"] and len(state["optimizers"]) == 2
    other = build_optimizer(Mixed(), OptimizerConfig(name="adamw"), "cpu")
    with pytest.raises(ValueError, match="not"):
        opt.load_state_dict(other.state_dict())


@needs_muon
def test_a_preset_refuses_muon_on_a_model_without_hidden_matrices() -> None:
    text = PRESET.format(optimizer='{ name = "muon", lr = 0.02 }', scheduler='{ name = "constant" }').replace(
        "hidden = [32, 16]", "hidden = []")
    with pytest.raises(PresetError, match="this model has none besides the output layer"):
        load_preset_text(text, "m.toml")
    assert load_preset_text(text.replace("lr = 0.02", "lr = 0.02, aux_head = false")).resolved_runs()


@needs_muon
def test_grad_scaler_unscales_and_skips_every_sub_optimizer_together() -> None:
    # fp16 training's GradScaler, on CPU tensors: the same unscale/inf-check/step path as CUDA.
    model = _net()
    opt = build_optimizer(model, OptimizerConfig(name="muon", lr=0.02), "cpu")
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    x = torch.randn(5, 3)

    def scaled_step(poison: bool) -> list[bool]:
        before = [p.detach().clone() for p in model.parameters()]
        opt.zero_grad(set_to_none=True)
        scaler.scale(model(x).square().mean()).backward()
        if poison:  # an overflow in one of AdamW's gradients (the output layer's bias)
            model[3].bias.grad[0] = float("inf")
        scaler.step(opt)
        scaler.update()
        return [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]

    assert all(scaled_step(poison=False))  # Muon's hidden weight and AdamW's parameters all moved
    assert not any(scaled_step(poison=True)) and scaler.get_scale() == 512.0  # both skipped, scale halved
