"""The journal of the operation under way: its format on disk is read by whichever release's updater starts
next (an upgrade switches releases halfway), so a journal written before today's code is read as it was; one
operation at a time; each phase journaled before it is reported."""

from __future__ import annotations

import json
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from podium_appliance.errors import ApplianceError
from podium_appliance.layout import Layout
from podium_appliance.update.journal import Busy, Journal, Steps, journal_path, read_journal

#: A journal as the updater of release 0.1.0 wrote it, killed while migrating the database.
WRITTEN_BEFORE = (
    '{"operation": "upgrade", "target": "1.1.0", "source": "1.0.0", "phase": "migrate", '
    '"started": 1767225600.5, "restore_data": true, "bundle": "/var/lib/podium-updater/downloads/x.bundle"}\n'
)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "root")


def test_a_journal_written_by_an_earlier_release_is_read_as_it_was(layout: Layout) -> None:
    path = layout.update_state / "journal.json"
    path.parent.mkdir(parents=True)
    path.write_text(WRITTEN_BEFORE)
    assert journal_path(layout) == path
    assert read_journal(layout) == Journal(
        "upgrade",
        "1.1.0",
        "1.0.0",
        "migrate",
        1767225600.5,
        True,
        "/var/lib/podium-updater/downloads/x.bundle",
    )


def test_entering_a_phase_writes_the_same_format_then_reports_it(layout: Layout) -> None:
    events: list[dict[str, Any]] = []
    steps = Steps(layout, events.append)
    journal = Journal("upgrade", "1.1.0", "1.0.0", "verify", 1767225600.5, True, "x.bundle")
    steps.enter(journal, "unpack", "unpacking 1.1.0")
    written = journal_path(layout).read_text()
    expected = {**json.loads(WRITTEN_BEFORE), "phase": "unpack", "bundle": "x.bundle"}
    assert json.loads(written) == asdict(journal) == expected
    assert list(json.loads(written)) == list(json.loads(WRITTEN_BEFORE))  # the same fields, in order
    assert stat.S_IMODE(journal_path(layout).stat().st_mode) == 0o600
    assert events == [{"phase": "unpack", "message": "unpacking 1.1.0", "percent": 5.0}]
    steps.clear()
    assert read_journal(layout) is None


def test_an_unreadable_journal_is_said_not_ignored(layout: Layout) -> None:
    journal_path(layout).parent.mkdir(parents=True)
    journal_path(layout).write_text('{"operation": "upgrade"}')
    with pytest.raises(ApplianceError, match=r"journal\.json is unreadable"):
        read_journal(layout)


def test_one_operation_at_a_time(layout: Layout) -> None:
    busy = pytest.raises(Busy, match="another update is under way")
    with Steps(layout).locked(), busy, Steps(layout).locked():
        pass
    with Steps(layout).locked():  # released
        pass
