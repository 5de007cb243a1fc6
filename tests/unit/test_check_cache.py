"""Passed torch-backed run checks are kept by what decides them, and only those."""

from __future__ import annotations

from pathlib import Path

import pytest

from optlab.errors import PresetError
from optlab.preset import check_cache, checks
from optlab.preset.loader import load_preset_text
from optlab.registry import Source

PRESET = """
name = "cached"
[data]
dataset = "digits"
val_fraction = 0.2
[model]
name = "mlp"
hidden = [8]
[train]
epochs = 2
[[runs]]
name = "adagrad"
optimizer = {{ name = "adagrad", lr = 0.05, lr_decay = {lr_decay} }}
[[runs]]
name = "adam"
optimizer = {{ name = "adam", lr = 1e-3 }}
scheduler = {{ name = "cosine" }}
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "checks"
    monkeypatch.setenv(check_cache.ENV, str(folder))
    monkeypatch.setattr(check_cache, "_PASSED", set())
    return folder


def count_torch_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = checks._torch_error

    def counted(run, input_shape, outputs):  # type: ignore[no-untyped-def]
        calls.append(run.name)
        return real(run, input_shape, outputs)

    monkeypatch.setattr(checks, "_torch_error", counted)
    return calls


def test_a_preset_validated_before_is_not_checked_against_torch_again(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_torch_checks(monkeypatch)
    load_preset_text(PRESET.format(lr_decay=0.0)).resolved_runs()
    assert sorted(calls) == ["adagrad", "adam"]  # once per run: the second look is answered in-process
    assert len(list(cache.iterdir())) == 2

    calls.clear()
    monkeypatch.setattr(check_cache, "_PASSED", set())  # a new process: only the files remain
    load_preset_text(PRESET.format(lr_decay=0.0))
    assert calls == []

    load_preset_text(PRESET.format(lr_decay=0.1))  # another optimizer argument: checked
    assert calls == ["adagrad"]


def test_a_failed_check_is_never_kept(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_torch_checks(monkeypatch)
    for _ in range(2):
        with pytest.raises(PresetError, match="Invalid lr_decay"):
            load_preset_text(PRESET.format(lr_decay=-1.0))
    assert calls == ["adagrad", "adagrad"]
    assert not cache.exists() or not list(cache.iterdir())


def test_off_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(check_cache.ENV, "off")
    monkeypatch.setattr(check_cache, "_PASSED", set())
    calls = count_torch_checks(monkeypatch)
    load_preset_text(PRESET.format(lr_decay=0.0)).resolved_runs()
    assert sorted(calls) == ["adagrad", "adagrad", "adam", "adam"]


def test_entries_whose_code_no_key_names_are_checked_every_time(fresh_registry: object) -> None:
    reg = fresh_registry
    facts = {"lr": 0.1}
    assert check_cache.check_key([("optimizer", "sgd")], facts) is not None
    assert check_cache.check_key([("optimizer", "sgd")], facts) != check_cache.check_key(
        [("optimizer", "sgd")], {"lr": 0.2}
    )
    plugin = reg.registrar(Source("file", path="/x/p.py", sha256="ab" * 32))  # type: ignore[attr-defined]
    plugin.optimizer("from_file", "torch.optim:SGD")
    unversioned = reg.registrar(Source("package", "somepkg"))  # type: ignore[attr-defined]
    unversioned.optimizer("unversioned", "torch.optim:SGD")
    versioned = reg.registrar(Source("package", "otherpkg", "1.0"))  # type: ignore[attr-defined]
    versioned.optimizer("as_callable", lambda params, lr: None)
    versioned.optimizer("versioned", "torch.optim:SGD")
    for name in ("from_file", "unversioned", "as_callable"):
        assert check_cache.check_key([("optimizer", name)], facts) is None, name
    assert check_cache.check_key([("optimizer", "versioned")], facts) is not None
