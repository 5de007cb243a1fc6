"""Schedulers a shortened run never lets act: one note per configuration, naming the setting."""

from __future__ import annotations

from optlab.preset.loader import load_preset, load_preset_text

RUNS = """
[data]
dataset = "digits"
[train]
epochs = {epochs}
seeds = [0, 1, 2]
[[runs]]
name = "step"
scheduler = {{ name = "step", step_size = 10 }}
[[runs]]
name = "multistep"
scheduler = {{ name = "multistep", milestones = [5, 25] }}
[[runs]]
name = "plateau"
scheduler = {{ name = "plateau", patience = 2 }}
[[runs]]
name = "warm-step"
scheduler = {{ name = "step", step_size = 3, warmup_epochs = 2 }}
[[runs]]
name = "cosine"
scheduler = {{ name = "cosine" }}
"""


def _notes(epochs: int) -> dict[str, str]:
    notes = load_preset_text(RUNS.format(epochs=epochs), "p.toml").notes
    return {note.split("'")[1]: note for note in notes}


def test_a_scheduler_the_run_is_too_short_for_is_a_note_naming_the_setting() -> None:
    short = _notes(4)
    assert sorted(short) == ["multistep", "plateau", "step", "warm-step"]  # once per run, not per seed
    assert short["step"].endswith(
        "run 'step': scheduler 'step' with step_size = 10 never decays the lr in 4 epoch(s): set "
        "scheduler.step_size below 4, or train.epochs to at least 11 (it trains as a constant schedule would)"
    )
    assert "milestones = [5, 25] never decays the lr in 4 epoch(s): set scheduler.milestones below 4, " \
        "or train.epochs to at least 6" in short["multistep"]
    assert "patience = 2 cannot lower the lr before the last of 4 epoch(s): set scheduler.patience below 2, " \
        "or train.epochs to at least 5" in short["plateau"]
    assert "never decays the lr in 2 epoch(s) after 2 warm-up epoch(s)" in short["warm-step"]
    partly = _notes(12)
    assert sorted(partly) == ["multistep"] and "never reaches milestone(s) 25 in 12 epoch(s)" in partly["multistep"]
    assert "constant" not in partly["multistep"]  # it decays once
    assert _notes(30) == {}


def test_the_schedulers_preset_shortened_says_which_runs_train_alike() -> None:
    notes = load_preset("schedulers", ["train.epochs=4"]).notes
    assert [n.split("'")[1] for n in notes] == ["step", "multistep", "plateau"]
    assert load_preset("schedulers").notes == []
