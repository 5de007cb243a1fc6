"""Optimizers by registered name, with their keyword arguments checked against the real signatures.

A preset passes any extra key of `[train.optimizer]` straight to the optimizer's factory (a
torch class, or a plugin's), so the check here is what turns a typo like `mometum` into a
clear error instead of a TypeError mid-run. `build_optimizer` also applies what the registry
says about an optimizer: a matrix-only one (Muon) gets an auxiliary AdamW for the parameters
it cannot train (`optlab.training.param_groups`).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from optlab import registry
from optlab.errors import OptlabError
from optlab.spec import AUX_DEFAULTS, AUX_OPTIMIZER, OptimizerConfig
from optlab.training.param_groups import (
    CompositeOptimizer,
    NamedParam,
    decay_groups,
    matrix_split,
    named_params,
)

# Chosen by optlab per device (or meaningless for training), never by a preset.
IMPLEMENTATION_KNOBS = frozenset({"self", "params", "lr", "foreach", "fused", "capturable", "differentiable"})


class OptimizerUnavailable(OptlabError):
    """A registered optimizer whose class the installed packages lack (e.g. an older torch)."""


def factory(name: str) -> Callable[..., Optimizer]:
    entry = registry.get("optimizer", name)
    try:
        return entry.factory()  # type: ignore[return-value]
    except (ImportError, AttributeError) as exc:
        target = entry.target.replace(":", ".") if isinstance(entry.target, str) else name
        installed = f" (torch {torch.__version__})" if target.startswith("torch.") else ""
        needs = entry.extra.get("needs")
        hint = f"; it needs {needs}" if needs else ""
        raise OptimizerUnavailable(f"optimizer {name!r}: the installed packages lack {target}{installed}{hint}") from exc


def allowed_kwargs(name: str) -> list[str]:
    """The keys a preset may set for optimizer `name`, in signature order (a matrix-only
    optimizer's own, then those of its auxiliary AdamW)."""
    own = [p for p in registry.signature_params(factory(name))[0] if p not in IMPLEMENTATION_KNOBS]
    return own + list(AUX_DEFAULTS) if registry.get("optimizer", name).has("matrix_only") else own


def unknown_kwarg_error(key: str, allowed: list[str], what: str) -> str:
    """`unknown argument 'x' for <what> (did you mean 'y'?); allowed: ...` (shared with schedulers)."""
    hint = difflib.get_close_matches(key, allowed, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    listed = ", ".join(allowed) if allowed else "none"
    return f"unknown argument {key!r} for {what}{suggestion}; allowed: {listed}"


def _torch_kwargs(cfg: OptimizerConfig) -> dict[str, Any]:
    # TOML has no tuples; torch documents (and some code paths index) betas as a tuple.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.kwargs.items()}


def _matrix_only_names() -> str:
    return ", ".join(e.name for e in registry.registry().entries("optimizer") if e.has("matrix_only")) or "none"


def optimizer_kwargs_error(cfg: OptimizerConfig) -> str | None:
    """Why `cfg` cannot build its optimizer, or None when it can."""
    entry = registry.registry().find("optimizer", cfg.name)
    if entry is None:
        return registry.registry().unknown_message("optimizer", cfg.name)
    try:
        named, takes_any = registry.signature_params(factory(cfg.name))
    except OptimizerUnavailable as exc:
        return str(exc)
    # Some packages (pytorch-optimizer) take **kwargs only to ignore them: a typo would pass.
    takes_any = takes_any and not entry.extra.get("ignores_kwargs")
    allowed = allowed_kwargs(cfg.name)
    kwargs = cfg.kwargs
    for key in kwargs:
        if key in AUX_DEFAULTS and not entry.has("matrix_only"):
            return (
                f"{key} is for an optimizer that trains only weight matrices and leaves the rest to an "
                f"auxiliary AdamW ({_matrix_only_names()}); optimizer {cfg.name!r} trains every parameter itself"
            )
        if key not in allowed and (not takes_any or key in IMPLEMENTATION_KNOBS):
            return unknown_kwarg_error(key, allowed, f"optimizer {cfg.name!r}")
    if cfg.weight_decay_on == "matrices" and "weight_decay" not in named:
        return f"weight_decay_on = 'matrices' needs an optimizer with weight decay; {cfg.name!r} has none"
    if kwargs.get("nesterov"):
        momentum, dampening = kwargs.get("momentum", 0), kwargs.get("dampening", 0)
        if not (isinstance(momentum, int | float) and momentum > 0) or dampening != 0:
            return (
                f"nesterov = true needs momentum > 0 and dampening = 0 "
                f"(got momentum = {momentum}, dampening = {dampening})"
            )
    try:
        trial_step(cfg)
    except (ValueError, TypeError, RuntimeError, OptlabError) as exc:
        return f"invalid arguments for optimizer {cfg.name!r}: {exc}"
    except SystemExit as exc:  # a plugin optimizer's sys.exit(): its error, not optlab's exit
        return registry.exit_message(f"optimizer {cfg.name!r} ({entry.source.describe()})", exc, "when built and stepped")
    return None


def trial_step(cfg: OptimizerConfig) -> None:
    """Build `cfg`'s optimizer on a tiny two-layer model (a hidden matrix, biases, an output
    layer: what every model has, and what a matrix-only optimizer splits) and take one step
    the way the trainer does (train(), a closure, create_graph): the optimizer's own range and
    type checks (eps < 0, a string where a number belongs, ...) surface now, not mid-run."""
    entry = registry.get("optimizer", cfg.name)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # leave global state as it was
        warnings.simplefilter("ignore")  # e.g. create_graph's reference-cycle warning
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))
        x = torch.randn(4, 2)
        opt = build_optimizer(model, cfg, "cpu")
        if entry.has("train_eval"):
            opt.train()  # type: ignore[attr-defined]

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = model(x).square().mean()
            loss.backward(create_graph=entry.has("create_graph"))
            return loss

        if entry.has("needs_closure"):
            opt.step(closure)  # type: ignore[arg-type]  # torch types a closure as returning float; LBFGS and kin take the loss tensor
        else:
            closure()
            opt.step()
        opt.zero_grad(set_to_none=True)  # a create_graph backward leaves graphs in .grad


def _construct(
    cls: Callable[..., Optimizer], groups: list[dict[str, Any]], lr: float, kwargs: dict[str, Any], device_type: str
) -> Optimizer:
    """`cls` with the fused kernel where it has one for the device (CUDA, and CPU for
    sgd/adam/adamw/adagrad), else the foreach (multi-tensor) implementation.

    Why not torch's own default on CPU: it is the per-parameter for-loop there. Measured on the
    tutorial MLP (benchmarks/, one thread): an Adam step takes ~1.4 ms looped, ~0.37 ms fused,
    against ~3.3 ms for the whole forward+backward, so Adam runs train ~30% faster; SGD with
    momentum saves ~2%. foreach is at least as fast as the loop everywhere. The choice is the same
    for every run on a device, so comparisons stay fair."""
    signature = registry.signature_params(cls)[0]
    if "fused" in signature and device_type in ("cuda", "cpu"):
        try:
            return cls(groups, lr=lr, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):
            pass  # a combination or device the fused kernel lacks: the foreach path covers it
    if "foreach" in signature:
        return cls(groups, lr=lr, foreach=True, **kwargs)
    return cls(groups, lr=lr, **kwargs)


def build_optimizer(
    source: nn.Module | Iterable[torch.Tensor], cfg: OptimizerConfig, device_type: str
) -> Optimizer:
    """The optimizer for `cfg` over a model's parameters (or a plain iterable of tensors),
    with `weight_decay_on` applied through parameter groups. A matrix-only optimizer trains the
    hidden layers' 2-D weights and an AdamW (`aux_lr`, `aux_betas`, `aux_weight_decay`) the
    rest, behind one `CompositeOptimizer`."""
    cls = factory(cfg.name)
    params = named_params(source)
    kwargs = _torch_kwargs(cfg)
    if not registry.get("optimizer", cfg.name).has("matrix_only"):
        return _construct(cls, decay_groups(params, cfg.weight_decay_on), cfg.lr, kwargs, device_type)
    aux = {**AUX_DEFAULTS, **{k: kwargs.pop(k) for k in list(kwargs) if k in AUX_DEFAULTS}}
    matrices, rest = matrix_split(params, head_on_aux=bool(aux["aux_head"]))
    if not matrices:
        raise OptlabError(_no_matrix_message(cfg.name, params, bool(aux["aux_head"])))
    main = _construct(cls, [{"params": [p.param for p in matrices]}], cfg.lr, kwargs, device_type)
    if not rest:
        return main
    aux_groups = decay_groups(rest, cfg.weight_decay_on, float(aux["aux_weight_decay"]))
    aux_opt = _construct(
        factory(AUX_OPTIMIZER), aux_groups, float(aux["aux_lr"]), {"betas": tuple(aux["aux_betas"])}, device_type
    )
    return CompositeOptimizer([main, aux_opt], [cfg.name, AUX_OPTIMIZER])


def matrix_fit_error(cfg: OptimizerConfig, model: nn.Module) -> str | None:
    """Why a matrix-only optimizer has nothing to train in `model` (no hidden 2-D weight), or
    None; None for every other optimizer."""
    entry = registry.registry().find("optimizer", cfg.name)
    if entry is None or not entry.has("matrix_only"):
        return None
    head_on_aux = bool(cfg.kwargs.get("aux_head", AUX_DEFAULTS["aux_head"]))
    params = named_params(model)
    if matrix_split(params, head_on_aux)[0]:
        return None
    return _no_matrix_message(cfg.name, params, head_on_aux)


def _no_matrix_message(name: str, params: list[NamedParam], head_on_aux: bool) -> str:
    has_head = any(p.param.dim() == 2 and not p.embedding for p in params)
    hint = f" besides the output layer (aux_head = false trains it with {name})" if head_on_aux and has_head else ""
    return f"optimizer {name!r} trains the 2-D weight matrices of hidden layers, and this model has none{hint}"
