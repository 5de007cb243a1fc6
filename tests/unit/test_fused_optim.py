"""The vectorized updates against torch.optim itself (built as the trainer builds it: fused or
foreach kernels), for random per-run hyperparameters, over several steps."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from optlab.spec import OptimizerConfig
from optlab.training.fused.row_optim import RowUpdate, uses_fused_kernel
from optlab.training.fused.vector_optim import VectorUpdate, family, hypers_for
from optlab.training.optim import build_optimizer

# Measured: the largest relative difference over these tests stays below 2e-6 (float32, a few
# steps); the bound leaves room for other kernels' summation orders.
RTOL, ATOL = 1e-5, 1e-6
SHAPES = [(5, 3), (5,)]
STEPS = 4


def _configs(name: str) -> st.SearchStrategy[dict]:
    lr = st.floats(1e-4, 0.3)
    wd = st.sampled_from([0.0, 1e-3, 0.05])
    beta = st.floats(0.5, 0.999)
    if name == "sgd":
        return st.builds(
            lambda lr, m, d, nes, wd, mx: {"lr": lr, "momentum": m if nes or m else 0.0,
                                           "dampening": 0.0 if nes else d, "nesterov": nes and m > 0,
                                           "weight_decay": wd, "maximize": mx},
            lr, st.sampled_from([0.0, 0.5, 0.9]), st.sampled_from([0.0, 0.3]), st.booleans(), wd, st.booleans(),
        )
    if name in ("adam", "adamw"):
        return st.builds(
            lambda lr, b1, b2, eps, wd, ams: {"lr": lr, "betas": [b1, b2], "eps": eps, "weight_decay": wd,
                                              "amsgrad": ams},
            lr, beta, beta, st.sampled_from([1e-8, 1e-6]), wd, st.booleans(),
        )
    if name == "rmsprop":
        return st.builds(
            lambda lr, a, m, c, wd: {"lr": lr, "alpha": a, "momentum": m, "centered": c, "weight_decay": wd},
            st.floats(1e-4, 0.01), beta, st.sampled_from([0.0, 0.9]), st.booleans(), wd,
        )
    return st.builds(
        lambda lr, dec, init, wd: {"lr": lr, "lr_decay": dec, "initial_accumulator_value": init, "weight_decay": wd},
        lr, st.sampled_from([0.0, 0.01]), st.sampled_from([0.0, 0.1]), wd,
    )


def check_family(name: str, configs: list[dict], decay_on: str = "all", kernels: bool = False,
                 shapes: list[tuple[int, ...]] = SHAPES) -> float:
    """Steps K torch optimizers and one vectorized update on the same gradients; returns the
    largest relative difference of the parameters. The stack is laid out as the fused group's:
    one [K, P] row per run, each parameter a segment of it. `kernels`: through torch's fused
    kernels per row (`RowUpdate`, what a group uses where the runs' optimizers are fused), else
    the vectorized formulas (`VectorUpdate`)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    k = len(configs)
    sizes = [math.prod(s) for s in shapes]
    flat, grad = torch.randn(k, sum(sizes)), torch.zeros(k, sum(sizes))
    stacked = [part.view(k, *s) for part, s in zip(flat.split(sizes, 1), shapes, strict=True)]
    own = [[p[i].detach().clone().requires_grad_(True) for p in stacked] for i in range(k)]
    opts = []
    for i, cfg in enumerate(configs):
        kwargs = {key: v for key, v in cfg.items() if key != "lr"}
        opts.append(build_optimizer(own[i], OptimizerConfig(name=name, lr=cfg["lr"], weight_decay_on=decay_on,
                                                            **kwargs), "cpu"))
    assert family(opts[0]) is not None
    hypers = [[hypers_for(opts[i])[id(own[i][j])] for i in range(k)] for j in range(len(shapes))]
    if kernels:
        assert uses_fused_kernel(family(opts[0]), hypers)  # type: ignore[arg-type]
    kind = RowUpdate if kernels else VectorUpdate
    update = kind(family(opts[0]), flat, grad, slice(0, k), hypers,  # type: ignore[arg-type]
                  [torch.Size(s) for s in shapes])
    update.interval([[c["lr"] for c in configs]])
    for _ in range(STEPS):
        grads = [torch.randn(k, *s) for s in shapes]
        grad.copy_(torch.cat([g.reshape(k, -1) for g in grads], 1))
        for i, opt in enumerate(opts):
            for j, p in enumerate(own[i]):
                p.grad = grads[j][i].clone()
            opt.step()
        update.step(0)
    worst = 0.0
    for j, p in enumerate(stacked):
        for i in range(k):
            torch.testing.assert_close(p[i], own[i][j].detach(), rtol=RTOL, atol=ATOL)
            rel = ((p[i] - own[i][j]).abs() / own[i][j].abs().clamp_min(1e-3)).max().item()
            worst = max(worst, rel)
            # Its checkpoint state: what its own torch optimizer holds, in torch's format.
            mine, theirs = update.torch_state(j, i), opts[i].state.get(own[i][j], {})
            assert mine.keys() == theirs.keys()
            for key, value in theirs.items():
                torch.testing.assert_close(mine[key].float(), value.float(), rtol=1e-4, atol=1e-5)
    return worst


@settings(max_examples=25, deadline=None)
@given(st.lists(_configs("sgd"), min_size=1, max_size=4), st.booleans())
def test_sgd_matches_torch(configs: list[dict], kernels: bool) -> None:
    check_family("sgd", configs, kernels=kernels)


@settings(max_examples=25, deadline=None)
@given(st.lists(_configs("adam"), min_size=1, max_size=4), st.sampled_from(["adam", "adamw"]), st.booleans())
def test_adam_and_adamw_match_torch(configs: list[dict], name: str, kernels: bool) -> None:
    check_family(name, configs, kernels=kernels)


@settings(max_examples=20, deadline=None)
@given(st.lists(_configs("rmsprop"), min_size=1, max_size=4))
def test_rmsprop_matches_torch(configs: list[dict]) -> None:
    check_family("rmsprop", configs)


@settings(max_examples=20, deadline=None)
@given(st.lists(_configs("adagrad"), min_size=1, max_size=4), st.booleans())
def test_adagrad_matches_torch(configs: list[dict], kernels: bool) -> None:
    check_family("adagrad", configs, kernels=kernels)


def test_weight_decay_on_matrices_leaves_biases_undecayed() -> None:
    # Biases sit in an undecayed param group: the vectorized update reads it per parameter.
    check_family("adamw", [{"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.02, "weight_decay": 0.3}], decay_on="matrices")
    check_family("sgd", [{"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}] * 2, decay_on="matrices")
    for name in ("adamw", "sgd", "adagrad"):  # one kernel call per run and param group
        check_family(name, [{"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.02, "weight_decay": 0.3}], decay_on="matrices",
                     kernels=True)


def test_fused_kernels_give_the_unfused_runs_floats_exactly() -> None:
    # Same kernel, same numbers, same order per element. The kernels take vectors of 8 or 16
    # floats and finish a tensor's tail one by one, which may round differently (SGD's momentum:
    # 2e-7 above): where every parameter's size is a multiple of 16, as an MLP's layers usually
    # are, each element falls on the same side of that split in the row as in its own tensor.
    for name, cfg in (("adam", {"lr": 3e-3, "amsgrad": True}), ("adamw", {"lr": 3e-3, "weight_decay": 0.1}),
                      ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}), ("adagrad", {"lr": 0.05, "lr_decay": 0.01})):
        worst = check_family(name, [cfg, {**cfg, "lr": cfg["lr"] / 3}], kernels=True, shapes=[(16, 4), (16,), (4, 16)])
        assert worst == 0.0, name
