"""Model builders: an MLP, the classic LeNet-5 and a small CIFAR-style CNN, and any plugin's.

Every factory is called as a plugin's is, `factory(input_shape, n_outputs, **kwargs)` with the
per-sample input shape (channels first for images), so one `ModelConfig` works on any dataset
whose shape fits. Built-ins take their keyword arguments from the `ModelConfig` fields, a
plugin model from the extra keys of `[model]`. `model_fit_error` gives the shape verdict as
text, for preset validation: without building anything for the built-ins, by building the
model and running two zero samples through it for a plugin's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from optlab import registry
from optlab.spec import ModelConfig

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}

LENET_MIN_SIZE = 28


def _shape_text(input_shape: tuple[int, ...]) -> str:
    if len(input_shape) == 1:
        return f"{input_shape[0]} features"
    return "x".join(str(d) for d in input_shape)


def _lenet_padding(height: int, width: int) -> int:
    # LeNet-5 was designed for 32x32 inputs; MNIST-sized 28x28 images are padded by 2 so the
    # feature maps keep the original 28 -> 14 -> 10 -> 5 progression.
    return 2 if min(height, width) < 32 else 0


def model_fit_error(cfg: ModelConfig, input_shape: tuple[int, ...], n_outputs: int = 2) -> str | None:
    """Why `cfg` cannot be built for samples of `input_shape`, or None when it can."""
    entry = registry.registry().find("model", cfg.name)
    if entry is None:
        return registry.registry().unknown_message("model", cfg.name)
    if entry.source.origin != "builtin":
        return _plugin_fit_error(cfg, input_shape, n_outputs)
    if cfg.name == "mlp":
        return None
    if len(input_shape) != 3:
        return (
            f"model '{cfg.name}' needs image input (channels x height x width); "
            f"dataset input is {_shape_text(input_shape)}"
        )
    _, height, width = input_shape
    if cfg.name == "lenet":
        if min(height, width) < LENET_MIN_SIZE:
            return (
                f"lenet needs images of at least {LENET_MIN_SIZE}x{LENET_MIN_SIZE}; "
                f"dataset input is {_shape_text(input_shape)}"
            )
        return None
    if cfg.name == "cnn":
        if not cfg.channels:
            return "cnn needs at least one entry in model.channels"
        need = 2 ** len(cfg.channels)  # every block halves the image
        if min(height, width) < need:
            return (
                f"cnn with {len(cfg.channels)} conv blocks needs images of at least {need}x{need}; "
                f"dataset input is {_shape_text(input_shape)} (use fewer model.channels)"
            )
        return None
    return None


def _plugin_fit_error(cfg: ModelConfig, input_shape: tuple[int, ...], n_outputs: int) -> str | None:
    named, takes_any = registry.signature_params(registry.get("model", cfg.name).factory())
    allowed = [p for p in named if p not in ("input_shape", "n_outputs")]
    for key in cfg.kwargs:
        if key not in allowed and not takes_any:
            return f"unknown argument {key!r} for model {cfg.name!r}; allowed: {', '.join(allowed) or 'none'}"
    try:
        with torch.no_grad():
            model = build_model(cfg, input_shape, n_outputs).eval()
            out = model(torch.zeros(2, *input_shape))
    except SystemExit as exc:
        entry = registry.get("model", cfg.name)
        return registry.exit_message(f"model {cfg.name!r} ({entry.source.describe()})", exc, "when built")
    except Exception as exc:  # a plugin's model may fail in any way: report it, do not crash
        return f"model {cfg.name!r} does not fit input {_shape_text(input_shape)}: {type(exc).__name__}: {exc}"
    if not isinstance(out, torch.Tensor) or out.shape[0] != 2 or math.prod(out.shape[1:]) != n_outputs:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return f"model {cfg.name!r} must return a (batch, {n_outputs}) tensor for this dataset; got {got}"
    return None


def _activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}") from None


def mlp(
    input_shape: tuple[int, ...], n_outputs: int, *, hidden: list[int], activation: str = "relu",
    dropout: float = 0.0, batchnorm: bool = False,
) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(_activation(activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def lenet(
    input_shape: tuple[int, ...], n_outputs: int, *, activation: str = "relu", dropout: float = 0.0,
    batchnorm: bool = False,
) -> nn.Sequential:
    channels, height, width = input_shape
    pad = _lenet_padding(height, width)

    def conv_block(c_in: int, c_out: int, padding: int) -> list[nn.Module]:
        block: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size=5, padding=padding)]
        if batchnorm:
            block.append(nn.BatchNorm2d(c_out))
        return [*block, _activation(activation), nn.AvgPool2d(2)]

    def dense(n_in: int, n_out: int) -> list[nn.Module]:
        # Dropout is honoured here too, so the shared `model.dropout` field is never ignored.
        block = [nn.Linear(n_in, n_out), _activation(activation)]
        return [*block, nn.Dropout(dropout)] if dropout > 0 else block

    h = ((height + 2 * pad - 4) // 2 - 4) // 2
    w = ((width + 2 * pad - 4) // 2 - 4) // 2
    return nn.Sequential(
        *conv_block(channels, 6, pad),
        *conv_block(6, 16, 0),
        nn.Flatten(),
        *dense(16 * h * w, 120),
        *dense(120, 84),
        nn.Linear(84, n_outputs),
    )


def cnn(
    input_shape: tuple[int, ...], n_outputs: int, *, channels: list[int], activation: str = "relu",
    dropout: float = 0.0, batchnorm: bool = False,
) -> nn.Sequential:
    c_in, height, width = input_shape
    layers: list[nn.Module] = []
    for c in channels:
        for conv_in in (c_in, c):
            layers.append(nn.Conv2d(conv_in, c, kernel_size=3, padding=1))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c))
            layers.append(_activation(activation))
        layers.append(nn.MaxPool2d(2))
        c_in, height, width = c, height // 2, width // 2
    layers.append(nn.Flatten())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(c_in * height * width, 256), _activation(activation), nn.Linear(256, n_outputs)]
    return nn.Sequential(*layers)


# ModelConfig fields that are not keyword arguments of a factory.
NOT_FACTORY_FIELDS = ("name", "init")


def model_kwargs(cfg: ModelConfig) -> dict[str, object]:
    """What the factory of `cfg.name` is called with: the declared fields it takes (built-ins),
    or the extra keys of `[model]` (a plugin's own options)."""
    entry = registry.get("model", cfg.name)
    if entry.source.origin != "builtin":
        return cfg.kwargs
    taken = set(registry.signature_params(entry.factory())[0])
    fields = cfg.model_dump(exclude=set(NOT_FACTORY_FIELDS))
    return {k: v for k, v in fields.items() if k in taken}


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """A freshly initialised model (the factory's own init; see `apply_init`)."""
    entry = registry.get("model", cfg.name)
    if entry.source.origin == "builtin":
        problem = model_fit_error(cfg, tuple(input_shape))
        if problem:
            raise ValueError(problem)
    model = entry.factory()(tuple(input_shape), n_outputs, **model_kwargs(cfg))
    if not isinstance(model, nn.Module):
        raise TypeError(f"model {cfg.name!r}: its factory returned {type(model).__name__}, not an nn.Module")
    return model


INITS: dict[str, Callable[[torch.Tensor], object]] = {
    "xavier_normal": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
}


def apply_init(model: nn.Module, init: str) -> None:
    """Re-initialise Linear/Conv weights (biases zeroed); "default" keeps torch's own init.
    Draws from the global torch generator, so seed it before building the model."""
    if init == "default":
        return
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed: default, {', '.join(INITS)}")
    fn = INITS[init]
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            fn(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
