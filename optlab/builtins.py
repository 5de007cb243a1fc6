"""optlab's own optimizers, schedulers, models and datasets, registered as a plugin registers.

Factories are "module:attr" references, imported when a run is built: listing or checking a
name never imports torch (nor pytorch-optimizer: its names are registered when
`importlib.util.find_spec` finds the package, which does not import it).
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from typing import TYPE_CHECKING

from optlab.registry import Source

if TYPE_CHECKING:
    from optlab.registry import Registrar

TORCH_OPTIMIZERS = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "adamax": "Adamax",
    "nadam": "NAdam",
    "radam": "RAdam",
}

# `optlab tune`'s default search spaces, declared by the entries (docs/tune.md gives the
# sources: AlgoPerf's baselines, Crowded Valley, DeepOBS). The learning rate is log-uniform
# over `around` decades either side of the run's own lr; momentum and beta1 are drawn as
# 1 - x log-uniformly; weight decay log-uniformly (decoupled decay, AdamW's, is scaled by the
# lr, hence larger values).
_LR: dict[str, object] = {"around": 1.5}
_MOMENTUM: dict[str, object] = {"low": 0.0, "high": 0.99, "one_minus": True}
_BETA1: dict[str, object] = {"low": 0.5, "high": 0.99, "one_minus": True}
_L2: dict[str, object] = {"low": 1e-6, "high": 1e-2, "log": True}
_DECOUPLED: dict[str, object] = {"low": 1e-5, "high": 1e-1, "log": True}
_ADAM_LIKE: dict[str, dict[str, object]] = {"lr": _LR, "beta1": _BETA1, "weight_decay": _L2}
SEARCH_SPACES: dict[str, dict[str, dict[str, object]]] = {
    "sgd": {"lr": _LR, "momentum": _MOMENTUM, "weight_decay": _L2},
    "adam": _ADAM_LIKE,
    "nadam": _ADAM_LIKE,
    "radam": _ADAM_LIKE,
    "adamax": _ADAM_LIKE,
    "adamw": {"lr": _LR, "beta1": _BETA1, "weight_decay": _DECOUPLED},
    "rmsprop": {"lr": _LR, "weight_decay": _L2},
    "adagrad": {"lr": _LR, "weight_decay": _L2},
    "adadelta": {"lr": _LR, "weight_decay": _L2},
}

# Optimizers with capabilities, or that only recent torch releases have:
# name -> (torch.optim class, the torch release that added it, capabilities).
TORCH_OPTIMIZERS_SPECIAL: dict[str, tuple[str, str, dict[str, bool]]] = {
    # Takes 2-D matrices only: the trainer gives the other parameters to an auxiliary AdamW.
    "muon": ("Muon", "2.9", {"matrix_only": True}),
    "adafactor": ("Adafactor", "2.5", {}),
    # Re-evaluates the loss several times per step (line search): the trainer passes a closure.
    "lbfgs": ("LBFGS", "", {"needs_closure": True}),
}

# The `optlab[optimizers]` extra: name -> (pytorch_optimizer class, capabilities), each checked
# against pytorch-optimizer 4.1: ScheduleFreeAdamW averages its iterates (train()/eval() swap
# them); Prodigy estimates the step size and multiplies it by lr (default 1.0); SophiaH
# estimates the Hessian diagonal with Hutchinson's method from the gradients' graph, so the
# backward pass must keep it (create_graph=True); none of them needs a closure.
PYTORCH_OPTIMIZER_EXTRA = "pip install 'optlab[optimizers]'"
PYTORCH_OPTIMIZERS: dict[str, tuple[str, dict[str, bool]]] = {
    "lion": ("Lion", {}),
    "prodigy": ("Prodigy", {"lr_is_multiplier": True}),
    "schedulefree_adamw": ("ScheduleFreeAdamW", {"train_eval": True}),
    "schedulefree_sgd": ("ScheduleFreeSGD", {"train_eval": True}),
    "soap": ("SOAP", {}),
    "adan": ("Adan", {}),
    "ademamix": ("AdEMAMix", {}),
    "sophiah": ("SophiaH", {"create_graph": True}),
}

# name -> (torch class in torch.optim.lr_scheduler, steps per batch)
TORCH_SCHEDULERS = {
    "step": ("StepLR", False),
    "multistep": ("MultiStepLR", False),
    "exponential": ("ExponentialLR", False),
    "cosine": ("CosineAnnealingLR", False),
    "cosine_warm_restarts": ("CosineAnnealingWarmRestarts", False),
    "cyclic": ("CyclicLR", True),
    "onecycle": ("OneCycleLR", True),
    "plateau": ("ReduceLROnPlateau", False),
    "linear": ("LinearLR", False),
}

MODELS = ("mlp", "lenet", "cnn")
# What `--fuse auto` can train as one stacked model (optlab/training/fused/): the models with a
# stacked forward and the optimizers with a vectorized update.
FUSED_MODELS = ("mlp",)
FUSED_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
# The datasets of optlab.data.catalog, loaded by optlab.data.datasets.
CATALOG_DATASETS = ("digits", "breast-cancer", "diabetes", "mnist", "fashion-mnist", "cifar10")
# Datasets read from the user's files: reader(cfg) -> optlab.data.bundle.ArrayData, the [data]
# fields each reads (DataConfig refuses the others), and a cheaper describe(cfg) where loading
# would decode everything just to learn the shapes.
FILE_DATASETS: dict[str, dict[str, object]] = {
    "csv": {
        "reader": "optlab.data.files:read_csv",
        "fields": ("path", "test_path", "target", "features", "drop", "task", "delimiter"),
    },
    "npz": {"reader": "optlab.data.files:read_npz", "fields": ("path", "task")},
    "imagefolder": {
        "reader": "optlab.data.imagefolder:read_imagefolder",
        "fields": ("path", "image_size", "grayscale", "max_memory"),
        "describe": "optlab.data.imagefolder:describe_imagefolder",
    },
}


def optimizers_extra_installed() -> bool:
    """Whether `optlab[optimizers]` (pytorch-optimizer) is installed; finding it imports nothing."""
    return importlib.util.find_spec("pytorch_optimizer") is not None


def pytorch_optimizer_source() -> Source:
    """The installed pytorch-optimizer distribution, read from its metadata (no import)."""
    try:
        version = metadata.version("pytorch-optimizer")
    except metadata.PackageNotFoundError:
        version = ""
    return Source("package", "pytorch-optimizer", version)


def register(registry: Registrar) -> None:
    for name, cls in TORCH_OPTIMIZERS.items():
        registry.optimizer(name, f"torch.optim:{cls}", search=SEARCH_SPACES.get(name), fuses=name in FUSED_OPTIMIZERS)
    for name, (cls, since, caps) in TORCH_OPTIMIZERS_SPECIAL.items():
        registry.builtin("optimizer", name, f"torch.optim:{cls}", {"needs": f"torch >= {since}"} if since else {}, **caps)
    if optimizers_extra_installed():
        extra = registry.for_source(pytorch_optimizer_source())
        for name, (cls, caps) in PYTORCH_OPTIMIZERS.items():
            # Their **kwargs swallow unknown keys: the signature check must not trust it.
            extra.builtin("optimizer", name, f"pytorch_optimizer:{cls}",
                          {"ignores_kwargs": True, "needs": "pytorch-optimizer >= 4.1"}, **caps)
    else:
        for name in PYTORCH_OPTIMIZERS:
            registry.needs("optimizer", name, PYTORCH_OPTIMIZER_EXTRA)
    registry.scheduler("constant", "optlab.training.schedulers:constant")
    for name, (cls, per_batch) in TORCH_SCHEDULERS.items():
        registry.scheduler(name, f"torch.optim.lr_scheduler:{cls}", per_batch=per_batch)
    for name in MODELS:
        registry.model(name, f"optlab.models.registry:{name}", fuses=name in FUSED_MODELS)
    for name in CATALOG_DATASETS:
        registry.builtin("dataset", name, "optlab.data.datasets:load_catalog_dataset", {"catalog": True})
    for name, facts in FILE_DATASETS.items():
        file_extra = {"file": True, **{k: v for k, v in facts.items() if k != "reader"}}
        registry.builtin("dataset", name, str(facts["reader"]), file_extra)
