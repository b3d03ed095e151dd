"""Fixtures layered as DESIGN.md asks: pool database → simulator → clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .simproc import Sim, start_sim


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[Sim]:
    """A simulator on the bundled pool, shared by the tests of a module that only read or undo."""
    sim = start_sim()
    yield sim
    sim.stop()


@pytest.fixture
def sim() -> Iterator[Sim]:
    """A fresh simulator on the bundled pool, for tests that change it."""
    sim = start_sim("--op-seconds", "0.02")
    yield sim
    sim.stop()
