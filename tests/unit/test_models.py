"""Model builders, weight init and the loss/output helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optlab.models.registry import apply_init, build_model, count_parameters, model_fit_error
from optlab.spec import ACTIVATIONS, INITS, ModelConfig
from optlab.training.losses import build_loss, loss_task_error, n_outputs, predictions, probabilities

SHAPES = {"mlp": (1, 8, 8), "lenet": (1, 28, 28), "cnn": (3, 32, 32)}


def test_mlp_matches_the_pytorch_tutorial_parameter_count() -> None:
    tutorial = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    )
    model = build_model(ModelConfig(name="mlp", hidden=[512, 512], activation="relu"), (1, 28, 28), 10)
    assert count_parameters(model) == count_parameters(tutorial) == 669_706
    assert [type(m) for m in model] == [type(m) for m in tutorial]


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("name", list(SHAPES))
def test_every_model_activation_and_init_builds_and_runs(name: str, activation: str, init: str) -> None:
    cfg = ModelConfig(
        name=name,
        activation=activation,
        init=init,
        hidden=[16, 8],
        channels=[4, 8],
        batchnorm=True,
        dropout=0.1,
    )
    torch.manual_seed(0)
    model = build_model(cfg, SHAPES[name], 7)
    apply_init(model, init)
    out = model(torch.randn(3, *SHAPES[name]))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()
    model.eval()
    assert model(torch.randn(1, *SHAPES[name])).shape == (1, 7)


def test_mlp_on_tabular_input_and_layer_order() -> None:
    cfg = ModelConfig(name="mlp", hidden=[5], batchnorm=True, dropout=0.5, activation="tanh")
    model = build_model(cfg, (30,), 1)
    kinds = [type(m) for m in model]
    assert kinds == [nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout, nn.Linear]
    assert model(torch.randn(4, 30)).shape == (4, 1)


def test_lenet_shapes() -> None:
    cfg = ModelConfig(name="lenet", activation="sigmoid")
    model = build_model(cfg, (1, 28, 28), 10)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert model[0].padding == (2, 2)
    # The classic LeNet-5 on MNIST: 61,706 parameters.
    assert count_parameters(model) == 61_706
    cifar = build_model(cfg, (3, 32, 32), 10)
    assert cifar[0].padding == (0, 0)
    assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_lenet_and_cnn_reject_inputs_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match=r"lenet needs images of at least 28x28; dataset input is 1x8x8"):
        build_model(ModelConfig(name="lenet"), (1, 8, 8), 10)
    assert model_fit_error(ModelConfig(name="lenet"), (1, 8, 8)) == (
        "lenet needs images of at least 28x28; dataset input is 1x8x8"
    )
    assert "needs image input" in (model_fit_error(ModelConfig(name="cnn"), (30,)) or "")
    assert "needs image input" in (model_fit_error(ModelConfig(name="lenet"), (10,)) or "")
    assert "at least 16x16" in (model_fit_error(ModelConfig(name="cnn", channels=[4] * 4), (1, 8, 8)) or "")
    for name, shape in SHAPES.items():
        assert model_fit_error(ModelConfig(name=name), shape) is None
    assert model_fit_error(ModelConfig(name="mlp"), (30,)) is None
    assert model_fit_error(ModelConfig(name="cnn"), (1, 28, 28)) is None


def _weights(name: str, init: str, seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(name=name, init=init, channels=[4], hidden=[8]), SHAPES[name], 3)
    apply_init(model, init)
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("init", INITS)
def test_same_seed_same_weights_other_seed_other_weights(init: str) -> None:
    for name in SHAPES:
        a, b, c = _weights(name, init, 1), _weights(name, init, 1), _weights(name, init, 2)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        assert not all(torch.equal(x, z) for x, z in zip(a, c, strict=True))


def test_apply_init_zeroes_biases_and_rejects_unknown() -> None:
    model = build_model(ModelConfig(name="cnn", channels=[4]), (1, 8, 8), 3)
    apply_init(model, "kaiming_normal")
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            assert torch.count_nonzero(m.bias) == 0
    with pytest.raises(ValueError, match="unknown init"):
        apply_init(model, "orthogonal")


def test_count_parameters_ignores_frozen() -> None:
    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    assert count_parameters(model) == 6


# ---------------------------------------------------------------------------- losses


def test_n_outputs() -> None:
    assert n_outputs("multiclass", 10, "cross_entropy") == 10
    assert n_outputs("binary", 2, "bce_with_logits") == 1
    assert n_outputs("binary", 2, "cross_entropy") == 2
    assert n_outputs("regression", 0, "mse") == 1


def test_loss_task_error() -> None:
    assert loss_task_error("cross_entropy", "regression", "diabetes") == (
        "loss 'cross_entropy' does not fit the regression dataset 'diabetes'; allowed: mse, l1, smooth_l1"
    )
    assert "allowed: cross_entropy" in (loss_task_error("bce_with_logits", "multiclass", "digits") or "")
    assert "allowed: cross_entropy, bce_with_logits" in (loss_task_error("mse", "binary") or "")
    for loss, task in [
        ("cross_entropy", "multiclass"),
        ("cross_entropy", "binary"),
        ("bce_with_logits", "binary"),
        ("mse", "regression"),
        ("l1", "regression"),
        ("smooth_l1", "regression"),
    ]:
        assert loss_task_error(loss, task) is None
    with pytest.raises(ValueError, match="does not fit"):
        build_loss("mse", "multiclass")


@pytest.mark.parametrize("n", [1, 5])
def test_loss_shapes_for_each_task(n: int) -> None:
    torch.manual_seed(0)
    y_cls = torch.randint(0, 4, (n,))
    y_bin = torch.randint(0, 2, (n,))
    y_reg = torch.randn(n)
    cases = [
        ("cross_entropy", "multiclass", torch.randn(n, 4), y_cls),
        ("cross_entropy", "binary", torch.randn(n, 2), y_bin),
        ("bce_with_logits", "binary", torch.randn(n, 1), y_bin),
        ("mse", "regression", torch.randn(n, 1), y_reg),
        ("l1", "regression", torch.randn(n, 1), y_reg),
        ("smooth_l1", "regression", torch.randn(n, 1), y_reg),
    ]
    for loss, task, out, y in cases:
        value = build_loss(loss, task)(out, y)
        assert value.shape == () and torch.isfinite(value), (loss, task)
    # Each equals the plain torch loss on matching shapes (mean reduction, no broadcasting).
    out = torch.randn(n, 1)
    expected = nn.functional.mse_loss(out[:, 0], y_reg)
    assert torch.allclose(build_loss("mse", "regression")(out, y_reg), expected)
    expected = nn.functional.binary_cross_entropy_with_logits(out[:, 0], y_bin.float())
    assert torch.allclose(build_loss("bce_with_logits", "binary")(out, y_bin), expected)


def test_label_smoothing() -> None:
    out, y = torch.randn(6, 3), torch.randint(0, 3, (6,))
    smooth = build_loss("cross_entropy", "multiclass", label_smoothing=0.2)(out, y)
    assert torch.allclose(smooth, nn.functional.cross_entropy(out, y, label_smoothing=0.2))
    with pytest.raises(ValueError, match="label_smoothing"):
        build_loss("bce_with_logits", "binary", label_smoothing=0.1)


def test_probabilities_and_predictions() -> None:
    torch.manual_seed(0)
    logits = torch.randn(8, 5)
    prob = probabilities(logits, "multiclass", "cross_entropy")
    assert prob.shape == (8, 5)
    assert torch.allclose(prob.sum(dim=1), torch.ones(8))
    pred = predictions(logits, "multiclass", "cross_entropy")
    assert pred.dtype == torch.int64 and torch.equal(pred, logits.argmax(dim=1))

    one = torch.tensor([[-2.0], [0.0], [3.0]])
    p1 = probabilities(one, "binary", "bce_with_logits")
    assert p1.shape == (3,) and torch.allclose(p1, torch.sigmoid(one[:, 0]))
    assert predictions(one, "binary", "bce_with_logits").tolist() == [0, 1, 1]

    two = torch.tensor([[1.0, -1.0], [0.0, 0.0], [-1.0, 2.0]])
    p2 = probabilities(two, "binary", "cross_entropy")
    assert p2.shape == (3,) and torch.allclose(p2, torch.softmax(two, dim=1)[:, 1])
    pred2 = predictions(two, "binary", "cross_entropy")
    assert pred2.dtype == torch.int64 and pred2.tolist() == [0, 1, 1]

    reg = torch.tensor([[1.5], [-0.5]])
    assert probabilities(reg, "regression", "mse").tolist() == [1.5, -0.5]
    assert predictions(reg, "regression", "mse").shape == (2,)
