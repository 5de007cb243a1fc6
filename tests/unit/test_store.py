"""The run directory's writer: file modes a shared machine can read, directory names that stay
inside ./runs, and the code fingerprint that checkpoints carry."""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from optlab.errors import RunDirError
from optlab.runs import store
from optlab.runs.files import atomic_write_text, file_mode
from optlab.runs.store import RunStore, code_fingerprint, default_run_dir, prepare_run_dir


@pytest.fixture
def umask() -> Iterator[object]:
    """Set a umask for the test (file_mode reads it once per process, so forget that)."""
    old = os.umask(0o022)

    def set_mask(mask: int) -> None:
        os.umask(mask)
        file_mode.cache_clear()

    yield set_mask
    os.umask(old)
    file_mode.cache_clear()


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_atomic_writes_get_the_mode_the_umask_gives_plain_files(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    path = tmp_path / "results.json"
    atomic_write_text(path, "{}\n")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives: the reference
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_run_directory_is_readable_by_the_group_under_a_shared_umask(tmp_path: Path, umask) -> None:
    umask(0o022)
    root = prepare_run_dir(tmp_path / "run")
    sink = RunStore(root, 'name = "x"\n')
    sink.checkpoint("a", {"model": {"w": torch.zeros(2)}}, best=True)
    sink.close()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"preset.toml", "results.json", "checkpoint-last.pt", "checkpoint-best.pt"}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: "0o644" for p in files}


def test_checkpoints_record_the_code_fingerprint(tmp_path: Path) -> None:
    sink = RunStore(prepare_run_dir(tmp_path / "run"))
    sink.checkpoint("a", {"model": {}, "spec": "{}"}, best=False)
    sink.close()
    data = (tmp_path / "run" / "runs" / "a" / "checkpoint-last.pt").read_bytes()
    state = torch.load(io.BytesIO(data), weights_only=True)
    assert state["code_fingerprint"] == code_fingerprint()
    assert len(code_fingerprint()) == 16 and int(code_fingerprint(), 16) >= 0


def test_the_code_fingerprint_follows_the_core_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "optlab"
    for sub in store.FINGERPRINTED:
        (package / sub).mkdir(parents=True)
        (package / sub / "a.py").write_text("x = 1\n")
    (package / "runs").mkdir()
    monkeypatch.setattr(store, "__file__", str(package / "runs" / "store.py"))
    store.code_fingerprint.cache_clear()
    try:
        first = code_fingerprint()
        (package / "cli.py").write_text("elsewhere = True\n")  # outside the core: no change
        store.code_fingerprint.cache_clear()
        assert code_fingerprint() == first
        (package / "training" / "a.py").write_text("x = 2\n")
        store.code_fingerprint.cache_clear()
        assert code_fingerprint() != first
    finally:
        monkeypatch.undo()
        store.code_fingerprint.cache_clear()


@pytest.mark.parametrize("name", ["x/../../../escaped", "../up", "..", "/abs", "a\\b"])
def test_default_run_dirs_stay_inside_the_base_whatever_the_name(tmp_path: Path, name: str) -> None:
    base = tmp_path / "runs"
    path = default_run_dir(name, base)
    assert path.parent == base
    assert path.name != ".." and "/" not in path.name and os.sep not in path.name
    assert path.resolve().parent == base.resolve()


def test_an_existing_file_is_not_an_output_directory(tmp_path: Path) -> None:
    target = tmp_path / "ok.toml"
    target.write_text("mine")
    with pytest.raises(RunDirError, match=r"ok.toml: exists and is not a directory"):
        prepare_run_dir(target)
    assert target.read_text() == "mine"


def test_run_dir_list_reads_first_and_last_events_tolerantly(tmp_path: Path) -> None:
    """The start screen's list of run directories uses the store's line reader: a partial last
    line (a crash mid-write) is skipped, and the experiment's end before it still counts."""
    from optlab.tui.process import recent_run_dirs

    start = {"v": 1, "type": "experiment_started", "run": "", "preset": {"name": "p"}, "run_names": ["a", "b"]}
    ended = {"v": 1, "type": "experiment_ended", "run": "", "status": "interrupted"}
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "events.jsonl").write_text(json.dumps(start) + "\n" + json.dumps(ended) + '\n{"v": 1, "ty')
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "events.jsonl").write_text("not json\n")
    found = {info.path.name: info for info in recent_run_dirs(tmp_path)}
    assert (found["one"].preset, found["one"].status, found["one"].runs) == ("p", "interrupted", 2)
    assert found["two"].status == "unreadable"


def test_overrides_are_recorded_as_typed_and_a_bad_file_lists_none(tmp_path: Path) -> None:
    from optlab.runs.command_line import OVERRIDES_FILE, read_overrides, write_overrides

    write_overrides(tmp_path, [], None)
    assert not (tmp_path / OVERRIDES_FILE).exists() and read_overrides(tmp_path) == []
    write_overrides(tmp_path, ["train.epochs=1", "runs.adam.optimizer.lr=0.01"], 3)
    assert read_overrides(tmp_path) == ["--set train.epochs=1", "--set runs.adam.optimizer.lr=0.01", "--seeds 3"]
    for text in ("{not json", "[1, 2]", '{"set": "train.epochs=1", "seeds": true}'):
        (tmp_path / OVERRIDES_FILE).write_text(text)
        assert read_overrides(tmp_path) == []
