"""Shared test setup: small threads so tests stay quick on 2 cores, and a run dir factory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Tests must never touch the user's real directories or hang on a network probe.
os.environ.setdefault("OPTLAB_DATA_DIR", str(Path(__file__).parent / ".data-cache-unused"))
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("OPTLAB_PRESETS", str(home / "presets"))
    monkeypatch.setenv("OPTLAB_DATA_DIR", str(home / "data"))
    # Passed run checks are kept in the user's cache; tests that want it point it elsewhere.
    monkeypatch.setenv("OPTLAB_CHECK_CACHE", "off")


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> object:
    """The process-wide registries rebuilt for one test (built-ins only, no entry-point plugins),
    so whatever a test registers or loads is gone afterwards."""
    from optlab import registry

    monkeypatch.setenv(registry.AUTOLOAD_ENV, "1")
    monkeypatch.setattr(registry, "_REGISTRY", None)
    return registry.registry()
