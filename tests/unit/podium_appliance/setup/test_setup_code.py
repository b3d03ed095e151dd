"""The setup code: generated once, 0600, typed loosely, wrong codes slowed (capped per client, rate for all), erased."""

from __future__ import annotations

import logging
import stat

import pytest

from podium_appliance.errors import ApplianceError
from podium_appliance.setup import setup_code
from podium_appliance.setup.setup_code import SetupCode, normalize


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


class Clock:
    """time.monotonic for setup_code, moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(setup_code.time, "monotonic", lambda: self.now)


def wrong(code: SetupCode, client: str, match: str = "not the setup code") -> None:
    with pytest.raises(ApplianceError, match=match):
        code.check(client, "AAAA-AAAA-AAAA")


def test_setup_code_wrong_attempts_are_slowed_per_client_and_logged(appliance, caplog, monkeypatch):
    code = SetupCode(appliance)
    value = code.ensure()
    clock = Clock(monkeypatch)
    caplog.set_level(logging.INFO)
    for _ in range(setup_code.FREE_FAILURES):
        wrong(code, "192.0.2.66")
    with pytest.raises(ApplianceError, match=r"Too many wrong codes from your address: try again in 1 s"):
        code.check("192.0.2.66", value)  # even the right one waits
    code.check("192.0.2.7", value)  # another client (the person at the console's browser) is not held up
    clock.now += 1.01
    code.check("192.0.2.66", value)
    assert "wrong setup code from 192.0.2.66 (5 from its address" in caplog.text
    assert "setup code attempt from 192.0.2.66 refused" in caplog.text
    assert "AAAA-AAAA-AAAA" not in caplog.text and value not in caplog.text


def test_setup_code_the_wait_grows_but_is_capped_never_a_lockout(appliance, caplog, monkeypatch):
    """Someone behind the administrator's NAT typing wrong codes all day: the administrator, at the same
    address, never waits more than a minute, and a new code from the console lifts the wait at once."""
    code = SetupCode(appliance)
    value = code.ensure()
    clock = Clock(monkeypatch)
    caplog.set_level(logging.WARNING)
    waits = []
    for _ in range(200):
        wrong(code, "198.51.100.1")
        wait = code.limiter.address_wait("198.51.100.1", clock.now)
        waits.append(wait)
        clock.now += wait
    assert waits[: setup_code.FREE_FAILURES - 1] == [0.0] * (setup_code.FREE_FAILURES - 1)
    assert waits[setup_code.FREE_FAILURES - 1 : setup_code.FREE_FAILURES + 3] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == waits[-1] == setup_code.MAX_DELAY_SECONDS
    assert caplog.text.count("wrong setup code from 198.51.100.1") == 200  # every failure is logged
    wrong(code, "198.51.100.1")
    with pytest.raises(ApplianceError, match=r"try again in 60 s\. At the appliance's console"):
        code.check("198.51.100.1", value)
    clock.now += setup_code.MAX_DELAY_SECONDS
    code.check("198.51.100.1", value)  # the wait is over: the right code gets in, the address starts afresh
    for _ in range(setup_code.FREE_FAILURES):
        wrong(code, "198.51.100.1")
    wrong(code, "198.51.100.1", "Too many wrong codes from your address")
    code.check("198.51.100.1", code.renew())  # the console's new code: no wait at all
    # An address quiet for an hour starts afresh.
    for _ in range(setup_code.FREE_FAILURES + 3):
        wrong(code, "198.51.100.2")
        clock.now += setup_code.MAX_DELAY_SECONDS
    clock.now += setup_code.FORGET_SECONDS + 1
    assert code.limiter.address_wait("198.51.100.2", clock.now) == 0
    assert len(code.limiter.addresses) == 0


def test_setup_code_a_global_rate_holds_guesses_from_many_addresses(appliance, caplog, monkeypatch):
    code = SetupCode(appliance)
    value = code.ensure()
    clock = Clock(monkeypatch)
    caplog.set_level(logging.WARNING)
    checked = refused = 0
    for i in range(3000):  # 3000 addresses, one guess each, all within 10 s
        clock.now += 10 / 3000
        try:
            code.check(f"10.0.{i // 250}.{i % 250}", "AAAA-AAAA-AAAA")
        except ApplianceError as e:
            checked += "not the setup code" in e.message
            refused += "being tried on this appliance" in e.message
    # At most the burst and the rate were checked: the rest were refused without looking at the code.
    assert checked <= setup_code.GLOBAL_BURST + 10 * setup_code.GLOBAL_RATE + 1
    assert checked + refused == 3000 and refused > 2000
    assert caplog.text.count("refused: too many wrong codes on the appliance") == refused
    with pytest.raises(ApplianceError, match="being tried on this appliance"):
        code.check("192.0.2.7", value)  # the guesses hold up everyone for a moment ...
    clock.now += 1 / setup_code.GLOBAL_RATE
    code.check("192.0.2.7", value)  # ... a moment only


def test_setup_code_the_table_of_addresses_is_bounded(appliance, monkeypatch):
    code = SetupCode(appliance)
    code.ensure()
    clock = Clock(monkeypatch)
    for i in range(setup_code.MAX_ADDRESSES + 500):
        clock.now += 1  # slowly enough for the global rate
        wrong(code, f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(code.limiter.addresses) == setup_code.MAX_ADDRESSES
    assert "10.0.0.0" not in code.limiter.addresses  # the oldest were forgotten first
    assert (
        f"10.0.{(setup_code.MAX_ADDRESSES + 499) // 256 % 256}.{(setup_code.MAX_ADDRESSES + 499) % 256}"
        in (code.limiter.addresses)
    )


def test_setup_code_ipv6_clients_are_counted_by_their_64():
    key = setup_code.Limiter.key
    assert key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert key("2001:db8:1:3::1") != key("2001:db8:1:2::1")
    assert key("::ffff:192.0.2.1") == "192.0.2.1" and key("192.0.2.1") == "192.0.2.1"
    assert key("fe80::1%eth0") == "fe80::/64" and key("?") == "?"


def test_setup_code_after_setup_there_is_none(appliance):
    with pytest.raises(ApplianceError, match="set up already"):
        SetupCode(appliance).check("192.0.2.1", "ABCD-EFGH-JKMN")


def test_setup_code_issue_text_shows_address_escape_and_code(appliance):
    setup_code.write_issue(appliance, "ABCD-EFGH-JKMN")
    text = appliance.issue.read_text()
    assert "https://\\4/" in text and "Podium setup code: ABCD-EFGH-JKMN" in text
    setup_code.write_issue(appliance, None)
    assert "setup code" not in appliance.issue.read_text()
