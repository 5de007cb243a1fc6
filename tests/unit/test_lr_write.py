"""`--write-preset`'s copy: suggestions set, low confidence kept with a reason, never overwritten."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from optlab.errors import PresetError
from optlab.preset.loader import load_preset, load_preset_text
from optlab.preset.lr_write import preset_with_lrs, write_new_preset


def test_suggested_and_low_confidence_runs() -> None:
    raw = load_preset("quickstart").raw
    optimizers = {"sgd": {"name": "sgd", "lr": 0.05}, "adam": {"name": "adam", "lr": 0.001}}
    readings = {"sgd": (0.123456, ""), "adam": (None, "the loss never descends clearly below its start")}
    text = preset_with_lrs(raw, optimizers, readings)
    doc = tomllib.loads(text)
    runs = {r["name"]: r for r in doc["runs"]}
    assert doc["name"] == "quickstart-lrfind"
    assert runs["sgd"]["optimizer"] == {"name": "sgd", "lr": 0.123}
    assert runs["adam"]["optimizer"]["lr"] == 0.001  # kept
    assert "# lr-find: adam: confidence low (the loss never descends clearly below its start); lr 0.001 kept" in text
    assert "# lr-find: sgd: suggested lr 0.123 (was 0.05)" in text
    assert "# lr-find: rmsprop: not tested" in text
    assert len(load_preset_text(text).resolved_runs()) == 6


def test_never_overwrites_and_refuses_an_invalid_copy(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("mine")
    with pytest.raises(PresetError, match="exists"):
        write_new_preset(path, 'name = "x"\n[[runs]]\nname = "a"\n')
    assert path.read_text() == "mine"
    with pytest.raises(PresetError):
        write_new_preset(tmp_path / "bad.toml", 'name = "x"\n[[runs]]\nname = "a"\noptimizer = { lr = -1 }\n')
    assert not (tmp_path / "bad.toml").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["p.toml"]  # no temporary file left either
