"""The registries: names for the schema, messages for unknown names, plugins' rules."""

from __future__ import annotations

import pytest

from optlab import registry
from optlab.errors import PresetError
from optlab.preset.loader import load_preset_text
from optlab.registry import PluginError, Registry, Source


def _preset(optimizer: str = "adam", dataset: str = "digits", model: str = "mlp") -> str:
    return (
        f'[data]\ndataset = "{dataset}"\ntrain_limit = 200\n[model]\nname = "{model}"\n'
        f'[[runs]]\nname = "a"\noptimizer = {{ name = "{optimizer}", lr = 0.01 }}\n'
    )


def test_built_ins_fill_every_registry() -> None:
    assert {"sgd", "adam", "adamw"} <= set(registry.names("optimizer"))
    assert {"constant", "cosine", "onecycle"} <= set(registry.names("scheduler"))
    assert registry.names("model")[:3] == ["mlp", "lenet", "cnn"]
    assert "digits" in registry.names("dataset")
    assert registry.get("scheduler", "onecycle").has("per_batch")
    assert not registry.get("scheduler", "cosine").has("per_batch")
    assert registry.get("optimizer", "adam").source.origin == "builtin"


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"optimizer": "adamm"}, ["unknown optimizer 'adamm'", "did you mean 'adam'", "known: sgd, adam", "--plugin"]),
        ({"dataset": "digitz"}, ["unknown dataset 'digitz'", "did you mean 'digits'"]),
        ({"model": "mlpp"}, ["unknown model 'mlpp'", "did you mean 'mlp'", "known: mlp, lenet, cnn"]),
    ],
)
def test_an_unknown_name_lists_the_known_ones(kwargs: dict[str, str], fragments: list[str]) -> None:
    with pytest.raises(PresetError) as info:
        load_preset_text(_preset(**kwargs), "exp.toml")
    message = str(info.value)
    assert message.startswith("exp.toml: ")
    for fragment in fragments:
        assert fragment in message


def test_a_name_held_back_by_a_missing_package_says_what_to_install() -> None:
    reg = Registry()
    reg.registrar(Source("builtin")).needs("optimizer", "lion", "pip install 'optlab[optimizers]'")
    assert "needs pip install 'optlab[optimizers]'" in reg.unknown_message("optimizer", "lion")
    assert "more with pip install 'optlab[optimizers]'" in reg.unknown_message("optimizer", "lio")


def test_plugins_may_not_take_a_name_or_invent_a_capability() -> None:
    reg = Registry()
    reg.registrar(Source("builtin")).optimizer("sgd", "torch.optim:SGD")
    other = reg.registrar(Source("file", path="/x/p.py", sha256="ab" * 32))
    with pytest.raises(PluginError, match="'sgd' is already registered by built-in"):
        other.optimizer("sgd", lambda params, lr: None)
    with pytest.raises(PluginError, match="unknown capabilities flies; allowed: create_graph"):
        other.optimizer("mine", lambda params, lr: None, flies=True)
    with pytest.raises(PluginError, match="may hold only letters"):
        other.model("my:model", lambda shape, n: None)
    with pytest.raises(PluginError, match="must be callable"):
        other.dataset("data", 42)  # type: ignore[arg-type]
