"""The setup code: generated once, 0600, typed loosely, wrong codes slowed per client, erased."""

from __future__ import annotations

import logging
import stat

import pytest

from podium_appliance import setup_code
from podium_appliance.errors import ApplianceError
from podium_appliance.setup_code import SetupCode, normalize


def test_setup_code_is_generated_once_and_kept_private(appliance):
    code = SetupCode(appliance)
    first = code.ensure()
    assert code.ensure() == first == code.current()
    assert len(first) == 14 and first.count("-") == 2
    assert set(first.replace("-", "")) <= set(setup_code.ALPHABET)
    assert stat.S_IMODE(appliance.setup_code.stat().st_mode) == 0o600
    assert code.renew() != first
    code.erase()
    assert code.current() is None


def test_setup_code_accepts_what_a_person_types(appliance):
    code = SetupCode(appliance)
    value = code.ensure()
    assert normalize(value.lower().replace("-", " ")) == value
    code.check("192.0.2.1", f"  {value.lower()} ")


def test_setup_code_wrong_attempts_are_slowed_per_client_and_logged(appliance, caplog, monkeypatch):
    code = SetupCode(appliance)
    value = code.ensure()
    clock = [1000.0]
    monkeypatch.setattr(setup_code.time, "monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO)
    for _ in range(setup_code.MAX_FAILURES):
        with pytest.raises(ApplianceError, match="not the setup code"):
            code.check("192.0.2.66", "AAAA-AAAA-AAAA")
    with pytest.raises(ApplianceError, match="Too many wrong codes"):
        code.check("192.0.2.66", value)  # even the right one waits
    code.check("192.0.2.7", value)  # another client (the person at the console's browser) is not locked out
    clock[0] += setup_code.WINDOW_SECONDS + 1
    code.check("192.0.2.66", value)
    assert "wrong setup code from 192.0.2.66" in caplog.text
    assert "AAAA-AAAA-AAAA" not in caplog.text and value not in caplog.text


def test_setup_code_after_setup_there_is_none(appliance):
    with pytest.raises(ApplianceError, match="set up already"):
        SetupCode(appliance).check("192.0.2.1", "ABCD-EFGH-JKMN")


def test_setup_code_issue_text_shows_address_escape_and_code(appliance):
    setup_code.write_issue(appliance, "ABCD-EFGH-JKMN")
    text = appliance.issue.read_text()
    assert "https://\\4/" in text and "Podium setup code: ABCD-EFGH-JKMN" in text
    setup_code.write_issue(appliance, None)
    assert "setup code" not in appliance.issue.read_text()
