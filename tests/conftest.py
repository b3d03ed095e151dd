"""Fixtures layered as DESIGN.md asks: pool database → simulator → clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from .harness.pgproc import Postgres, start_postgres
from .harness.serverproc import Api, admin_on
from .harness.simproc import Sim, start_sim


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[Sim]:
    """A simulator on the bundled pool, shared by the tests of a module that only read or undo."""
    sim = start_sim()
    yield sim
    sim.stop()


@pytest.fixture
def still_sim() -> Iterator[Sim]:
    """A fresh simulator whose consoles change only when typed into (no clock, no blink)."""
    sim = start_sim("--op-seconds", "0.01", env={"XAPISIM_CONSOLE_TICK": "0"})
    yield sim
    sim.stop()


@pytest.fixture
def tls_sim() -> Iterator[Sim]:
    """A fresh simulator speaking HTTPS (one certificate for every host)."""
    sim = start_sim("--tls")
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A real PostgreSQL server on loopback for a module's tests (role and database ``podium``)."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sim() -> Iterator[Sim]:
    """A fresh simulator on the bundled pool, for tests that change it."""
    sim = start_sim("--op-seconds", "0.02")
    yield sim
    sim.stop()


@pytest.fixture
async def podium_api(tmp_path, sim: Sim) -> AsyncIterator[Api]:
    """A Podium server connected to a fresh simulator, and an admin signed in on its API."""
    async with admin_on(tmp_path / "data", sim) as api:
        yield api
