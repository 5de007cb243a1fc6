"""optlab's own optimizers, schedulers, models and datasets, registered as a plugin registers.

Factories are "module:attr" references, imported when a run is built: listing or checking a
name never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
# The datasets of optlab.data.catalog, loaded by optlab.data.datasets.
CATALOG_DATASETS = ("digits", "breast-cancer", "diabetes", "mnist", "fashion-mnist", "cifar10")
# Datasets read from the user's files: reader(cfg) -> optlab.data.bundle.ArrayData, the [data]
# fields each reads (DataConfig refuses the others), and a cheaper describe(cfg) where loading
# would decode everything just to learn the shapes.
FILE_DATASETS: dict[str, dict[str, object]] = {
    "csv": {
        "reader": "optlab.data.files:read_csv",
        "fields": ("path", "test_path", "target", "features", "drop", "task"),
    },
    "npz": {"reader": "optlab.data.files:read_npz", "fields": ("path", "task")},
    "imagefolder": {
        "reader": "optlab.data.imagefolder:read_imagefolder",
        "fields": ("path", "image_size", "grayscale", "max_memory"),
        "describe": "optlab.data.imagefolder:describe_imagefolder",
    },
}


def register(registry: Registrar) -> None:
    for name, cls in TORCH_OPTIMIZERS.items():
        registry.optimizer(name, f"torch.optim:{cls}")
    registry.scheduler("constant", "optlab.training.schedulers:constant")
    for name, (cls, per_batch) in TORCH_SCHEDULERS.items():
        registry.scheduler(name, f"torch.optim.lr_scheduler:{cls}", per_batch=per_batch)
    for name in MODELS:
        registry.model(name, f"optlab.models.registry:{name}")
    for name in CATALOG_DATASETS:
        registry.builtin("dataset", name, "optlab.data.datasets:load_catalog_dataset", {"catalog": True})
    for name, facts in FILE_DATASETS.items():
        extra = {"file": True, **{k: v for k, v in facts.items() if k != "reader"}}
        registry.builtin("dataset", name, str(facts["reader"]), extra)
