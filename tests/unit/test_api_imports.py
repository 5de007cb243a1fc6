"""`import optlab` stays cheap: the API is imported on first use, and it needs no front end."""

from __future__ import annotations

from test_import_hygiene import BLOCKER, FRONT_END, _loaded_after  # type: ignore[import-not-found]


def test_import_optlab_imports_neither_the_api_nor_torch() -> None:
    out = _loaded_after("import optlab\nprint('optlab.api' in __import__('sys').modules)")
    assert "torch" not in out and "pydantic" not in out and "False" in out


def test_the_api_is_there_on_first_use_without_front_end_libraries() -> None:
    loaded = _loaded_after(BLOCKER + "import optlab\nassert callable(optlab.compare) and optlab.Experiment\n")
    assert not loaded & set(FRONT_END)
